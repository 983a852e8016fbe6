"""Hypothesis strategies for JSON values, as requests and replies of the
API socket carry them (test_api_fuzz.py, test_ctl.py)."""

from __future__ import annotations

from hypothesis import strategies as st

# JSON that parson (slirp4netns's parser) takes: finite numbers within a double
json_leaves = (st.none() | st.booleans() | st.integers(-(10 ** 300), 10 ** 300) | st.floats(allow_nan=False,
               allow_infinity=False) | st.text(max_size=20))
# ... and what it refuses: NaN, infinities, integers beyond a double
hostile_leaves = json_leaves | st.integers(-(10 ** 400), 10 ** 400) | st.floats()


def json_of(leaves):
    """Nested lists and objects of leaves, a few levels deep."""
    return st.recursive(leaves, lambda kids: st.lists(kids, max_size=4)
                        | st.dictionaries(st.text(max_size=8), kids, max_size=4), max_leaves=16)
