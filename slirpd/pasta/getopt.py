"""GNU getopt_long, as pasta calls it: the same acceptance, the same messages.

pasta parses its command line with glibc's getopt_long(), and its clients
depend on what that does: podman retries without --map-guest-addr when the
output holds "unrecognized option '--map-guest-addr", rootlesskit passes
both `--opt=value` and `--opt value`.  So this is getopt_long's behaviour,
checked against Debian 13's pasta (tests/test_pasta_cli.py runs both):

- options stop at the first non-option ("+" in pasta's optstring) and
  after "--";
- a long option may be abbreviated to any unique prefix; an exact name wins
  over longer ones it is a prefix of;
- `--opt=value` and `--opt value`; short options group (`-46q`) and take
  their argument attached (`-t80`) or as the next word;
- errors, as glibc words them, with argv[0] first: "unrecognized option
  '--X'", "option '--X' is ambiguous; possibilities: '--A' '--B'",
  "option '--X' doesn't allow an argument", "option '--X' requires an
  argument", "invalid option -- 'x'", "option requires an argument -- 'x'".
"""

from __future__ import annotations

import collections


class GetoptError(Exception):
    """A command line getopt_long refuses; str() is its whole message."""


# One option: its long name, its short letter (or None) and whether it takes
# an argument (a named tuple: no dataclasses on the way to ready, issue 19)
Option = collections.namedtuple("Option", "name short arg", defaults=(None, False))


class Getopt:
    """Parse argv (without the program name) as getopt_long does with a "+"
    optstring: iterate for (long name, argument or None), in order, as
    getopt_long returns them (an error is raised, GetoptError, when parsing
    reaches it: what comes before it is seen first, as pasta sees an early
    --version); then rest holds the arguments after the options."""

    def __init__(self, argv: list[str], options: list[Option], prog: str):
        self.argv = argv
        self.longs = {o.name: o for o in options}
        self.shorts = {o.short: o for o in options if o.short}
        self.prog = prog
        self.rest: list[str] = []

    def __iter__(self):
        argv, i = self.argv, 0
        while i < len(argv):
            word = argv[i]
            if word == "--":
                i += 1
                break
            if not word.startswith("-") or word == "-":
                break
            i += 1
            if word.startswith("--"):
                option, value = _long(word[2:], self.longs, self.prog)
                if option.arg and value is None:
                    if i == len(argv):
                        raise GetoptError(f"{self.prog}: option '--{option.name}' requires an argument")
                    value, i = argv[i], i + 1
                yield option.name, value
                continue
            letters = word[1:]
            while letters:
                letter, letters = letters[0], letters[1:]
                option = self.shorts.get(letter)
                if option is None:
                    raise GetoptError(f"{self.prog}: invalid option -- '{letter}'")
                value = None
                if option.arg:
                    if letters:
                        value, letters = letters, ""
                    elif i < len(argv):
                        value, i = argv[i], i + 1
                    else:
                        raise GetoptError(f"{self.prog}: option requires an argument -- '{letter}'")
                yield option.name, value
        self.rest = argv[i:]


def _long(text: str, longs: dict[str, Option], prog: str) -> tuple[Option, str | None]:
    """A long option's word after "--": its Option and inline argument."""
    name, eq, value = text.partition("=")
    option = longs.get(name)
    if option is None:
        matches = [o for n, o in longs.items() if n.startswith(name)] if name else []
        if not matches:
            raise GetoptError(f"{prog}: unrecognized option '--{text}'")
        if len(matches) > 1:
            names = " ".join(f"'--{o.name}'" for o in matches)
            raise GetoptError(f"{prog}: option '--{name}' is ambiguous; possibilities: {names}")
        option = matches[0]
    if eq and not option.arg:
        raise GetoptError(f"{prog}: option '--{option.name}' doesn't allow an argument")
    return option, value if eq else None
