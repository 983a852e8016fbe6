"""The man page, doc/slirpd.1: it renders without a warning, its two option
sections name every option the two --help texts name, spelled as --help
spells them (`slirpd --help` for the slirp4netns interface, `slirpd pasta
--help` for the pasta interface), and document no option --help does not
name; its .TH date and version are the package's.  That the wheel installs
it under share/man/man1 is checked in tests/test_wheel.py, with the wheel it
builds.
"""

from __future__ import annotations

import re
import subprocess

import pytest

from lib.harness import REPO, SLIRPD, environ_without_preload

PAGE = REPO / "doc" / "slirpd.1"
SLIRP4NETNS_SECTION = "SLIRP4NETNS INTERFACE OPTIONS"
PASTA_SECTION = "PASTA INTERFACE OPTIONS"


def render(*options: str) -> subprocess.CompletedProcess:
    """man -l on the page, 80 columns, plain text (man pipes it through col
    when stdout is not a terminal)."""
    env = environ_without_preload(MANWIDTH="80", LANG="C.UTF-8", LC_ALL="C.UTF-8")
    env.pop("MANPAGER", None)
    env.pop("PAGER", None)
    return subprocess.run(["man", *options, "-l", str(PAGE)], capture_output=True, text=True, env=env, timeout=60)


def sections(text: str) -> dict[str, list[str]]:
    """The rendered page's sections: heading (a line at column 0) -> its
    lines, stripped."""
    found: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines()[1:-1]:  # the header and footer lines name the page, not a section
        if line and not line[0].isspace():
            current = found.setdefault(line.strip(), [])
        elif current is not None:
            current.append(line.strip())
    return found


def help_tags(help_text: str) -> list[str]:
    """The option tags of a --help text: each line that starts (after
    indentation) with an option, up to the gap before its description,
    e.g. "-c, --configure" or "-l, --log-file PATH"."""
    tags = []
    for line in help_text.splitlines():
        m = re.match(r"\s*(-[^\t]*?)(?:\t|  |$)", line)
        if m and m.group(1) != "--":
            tags.append(m.group(1).strip())
    return tags


def long_options(text: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])--[a-z0-9][a-z0-9-]*", text))


def entry_tags(text: str, heading: str) -> list[str]:
    """The entries a section of the rendered page documents: each tag line of
    a .TP paragraph (at the section's indent, starting with "-", its
    description indented deeper on the next line)."""
    lines, inside = [], False
    for line in text.splitlines()[1:-1]:
        if line and not line[0].isspace():
            inside = line.strip() == heading
        elif inside:
            lines.append(line)
    return [tag.strip() for tag, desc in zip(lines, lines[1:])
            if re.match(r" {7}-", tag) and re.match(r" {8,}\S", desc)]


@pytest.fixture(scope="module")
def rendered() -> str:
    res = render()
    assert res.returncode == 0, res.stderr
    return res.stdout


@pytest.fixture(scope="module")
def page(rendered) -> dict[str, list[str]]:
    return sections(rendered)


def test_renders_without_warnings():
    res = render("--warnings=w")  # groff -ww: every warning
    assert res.returncode == 0 and res.stderr == "", res.stderr
    assert res.stdout.lstrip().startswith("SLIRPD(1)"), res.stdout[:200]
    groff = subprocess.run(["groff", "-man", "-ww", "-z", str(PAGE)], capture_output=True, text=True,
                           env=environ_without_preload(), timeout=60)
    assert groff.returncode == 0 and groff.stderr == "", groff.stderr


def test_has_the_sections_of_slirp4netns_and_passt_pages(page):
    for heading in ("NAME", "SYNOPSIS", "DESCRIPTION", SLIRP4NETNS_SECTION, PASTA_SECTION, "API", "EXAMPLES",
                    "SECURITY", "SEE ALSO"):
        assert page.get(heading), f"no {heading} section in {sorted(page)}"
    assert any(line.startswith("slirpd - ") for line in page["NAME"]), page["NAME"]


@pytest.mark.daemon  # runs slirpd --help
@pytest.mark.parametrize("interface, argv, section", [
    ("slirp4netns", [SLIRPD, "--help"], SLIRP4NETNS_SECTION),
    ("pasta", [SLIRPD, "pasta", "--help"], PASTA_SECTION),
])
def test_every_option_of_help_is_in_its_section(page, interface, argv, section):
    res = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    tags = help_tags(res.stdout)
    # the help texts are what the page is checked against: they must have been read
    assert len(tags) >= 20 and len(long_options("\n".join(tags))) >= 20, tags
    lines = set(page[section])
    missing = [tag for tag in tags if tag not in lines]
    assert not missing, f"{interface} options --help names that {section} has no entry for: {missing}"
    # and every long option the help mentions anywhere (its usage lines included)
    text = "\n".join(page[section])
    missing_long = sorted(long_options(res.stdout) - long_options(text))
    assert not missing_long, f"{interface} long options not in {section}: {missing_long}"


def help_text(argv: list[str]) -> str:
    res = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    return res.stdout


@pytest.mark.daemon  # runs slirpd --help
@pytest.mark.parametrize("interface, argv, section", [
    ("slirp4netns", [SLIRPD, "--help"], SLIRP4NETNS_SECTION),
    ("pasta", [SLIRPD, "pasta", "--help"], PASTA_SECTION),
])
def test_every_option_of_its_section_is_in_help(rendered, interface, argv, section):
    """The page documents no option --help does not name: an option removed
    from the parser cannot linger in the page."""
    text = help_text(argv)
    tags = entry_tags(rendered, section)
    assert len(tags) >= 20, tags  # the entries were found
    help_tags_ = set(help_tags(text))
    # the "-- COMMAND" entry is the command separator of the usage lines
    stale = [tag for tag in tags if tag not in help_tags_ and not (tag.startswith("-- ") and tag in text)]
    assert not stale, f"{section} documents {interface} options --help does not name: {stale}"


def test_entry_tags_sees_an_entry_help_lacks(rendered):
    """The page-to-help check can fail: an entry added to the page is found."""
    page_text = PAGE.read_text()
    extra = page_text.replace(".SH PASTA INTERFACE OPTIONS",
                              ".TP\n.B \\-\\-no\\-such\\-option\nGone.\n.SH PASTA INTERFACE OPTIONS", 1)
    res = subprocess.run(["groff", "-man", "-Tutf8", "-rLL=80n"], input=extra, capture_output=True, text=True,
                         env=environ_without_preload(), timeout=60)
    text = re.sub(r".\x08", "", res.stdout)
    assert "--no-such-option" in entry_tags(text, SLIRP4NETNS_SECTION)
    assert "--no-such-option" not in entry_tags(rendered, SLIRP4NETNS_SECTION)


def test_th_line_is_the_packages_version_and_date():
    """The .TH line's date and version come from one place, the package's
    __date__ and __version__ (`make man-th` writes the line)."""
    import slirpd

    th = re.search(r'^\.TH SLIRPD 1 "([^"]+)" "slirpd ([^"]+)"', PAGE.read_text(), re.M)
    assert th, "no .TH line naming the date and slirpd's version"
    assert th.groups() == (slirpd.__date__, slirpd.__version__)
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", slirpd.__date__), slirpd.__date__


def test_api_section_names_every_command(page):
    from slirpd import api

    commands = set(re.findall(r'"(\w+_\w+)": self\._', open(api.__file__).read()))
    assert {"add_hostfwd", "list_hostfwd", "remove_hostfwd", "get_stats"} <= commands, commands
    for command in commands:
        assert command in page["API"], f"the API section has no entry for {command}"

