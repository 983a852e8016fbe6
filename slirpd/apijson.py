"""The API's JSON, read as slirp4netns 1.2.0 reads it.

slirp4netns parses a request with parson (its vendor/parson, 1.5) from a C
string, and slirpd answers byte for byte as it does (tests/test_api.py runs
the same requests against both), so parse_request() follows parson where
Python's json differs:

- the text ends at the first NUL byte; a UTF-8 byte order mark is skipped,
  then C's whitespace;
- bytes that are not UTF-8 are taken as they come (they are replaced here:
  no name, address or protocol can contain them, so no reply changes);
- whatever follows the first JSON value is ignored;
- NaN, Infinity and numbers beyond a double's range are not JSON, and
  neither are duplicate keys in an object or an escaped half of a UTF-16
  surrogate pair ("\\ud800" alone).

One difference is deliberate: parson allows 2048 levels of nesting, Python's
parser recurses once per level and would hit its recursion limit near 1000,
at a depth that depends on the caller.  So nesting is checked first, and a
request nested deeper than NESTING_MAX is not JSON.  Another is not worth the
code: strtod takes "1." as a number, Python's json does not.
"""

from __future__ import annotations

import json
import math
import re

NESTING_MAX = 512  # levels of [ and { in a request

_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_JSON_ESCAPE = re.compile(r'\\(?:u([0-9a-fA-F]{4})|.)', re.DOTALL)
_JSON_SPACE = " \t\n\r\v\f"  # C's isspace(), which parson skips
_UTF8_BOM = b"\xef\xbb\xbf"


def _nesting(data: bytes) -> int:
    """The deepest nesting of [ and { in data, outside string literals (an
    unterminated string counts as text: such a request is not JSON anyway)."""
    depth = deepest = 0
    for c in _JSON_STRING.sub(b"", data):
        if c in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        elif c in b"]}":
            depth -= 1
    return deepest


def _has_lone_surrogate(literal: str) -> bool:
    """Whether a string literal escapes half a UTF-16 surrogate pair
    ("\\ud800" alone): parson refuses those, Python's json does not."""
    high_end = None  # where an escaped high surrogate ended
    for m in _JSON_ESCAPE.finditer(literal):
        cp = int(m[1], 16) if m[1] else None
        if high_end is not None:
            if m.start() != high_end or cp is None or not 0xDC00 <= cp <= 0xDFFF:
                return True
            high_end = None
        elif cp is not None and 0xD800 <= cp <= 0xDBFF:
            high_end = m.end()
        elif cp is not None and 0xDC00 <= cp <= 0xDFFF:
            return True
    return high_end is not None


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError("number out of range")
    return value


def _number(text: str) -> int:
    _finite(text)  # parson keeps every number as a double
    return int(text)


def _unique_keys(pairs: list) -> dict:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise ValueError("duplicate key")
    return obj


_DECODER = json.JSONDecoder(parse_float=_finite, parse_int=_number, parse_constant=_no_constant,
                            object_pairs_hook=_unique_keys)


def parse_request(data: bytes):
    """The first JSON value of a request, read as slirp4netns reads it (see
    the module doc).  Raises ValueError when there is none."""
    data = data.split(b"\0", 1)[0].removeprefix(_UTF8_BOM)
    if _nesting(data) > NESTING_MAX:
        raise ValueError(f"nested deeper than {NESTING_MAX} levels")
    if b"\\u" in data and any(_has_lone_surrogate(m[0].decode("ascii", "replace"))
                                 for m in _JSON_STRING.finditer(data)):
        raise ValueError("lone surrogate escape")
    # Bytes that are not UTF-8 cannot make a valid name, address or protocol
    text = data.decode("utf-8", errors="replace").lstrip(_JSON_SPACE)
    return _DECODER.raw_decode(text)[0]
