"""Argument checks and payload encoding, without a store."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workclaim import PayloadTooLarge, ValidationError
from workclaim.validation import check_name, check_queues, clip_error, encode_json

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@given(JSON)
def test_encode_json_accepts_exactly_nul_free_valid_unicode(value: object) -> None:
    import json

    text_of = json.dumps(value, ensure_ascii=False)
    has_bad = "\\u0000" in json.dumps(value) or any(0xD800 <= ord(c) <= 0xDFFF for c in text_of)
    if has_bad:
        with pytest.raises(ValidationError):
            encode_json(value, what="payload", max_bytes=10**9)
    else:
        assert json.loads(encode_json(value, what="payload", max_bytes=10**9)) == value


def test_escaped_backslashes_before_u0000_are_not_nul() -> None:
    assert encode_json("\\u0000", what="p", max_bytes=100) == '"\\\\u0000"'
    with pytest.raises(ValidationError, match="NUL"):
        encode_json("\\\x00", what="p", max_bytes=100)


def test_size_cap_counts_utf8_bytes() -> None:
    assert encode_json("é" * 4, what="p", max_bytes=10)  # 8 bytes + 2 quotes
    with pytest.raises(PayloadTooLarge, match="11 bytes"):
        encode_json("é" * 4 + "x", what="p", max_bytes=10)


def test_nan_is_refused() -> None:
    with pytest.raises(ValidationError):
        encode_json({"x": math.nan}, what="p", max_bytes=100)


@pytest.mark.parametrize("name", ["a", "Z9", "a.b:c-d_e", "x" * 128])
def test_good_names(name: str) -> None:
    assert check_name(name, "queue name") == name


def test_queues_are_deduplicated_in_order() -> None:
    assert check_queues(["b", "a", "b"]) == ("b", "a")
    with pytest.raises(ValidationError):
        check_queues(("a", 3))  # type: ignore[arg-type]


def test_clip_error_bounds_length_and_removes_nul() -> None:
    assert clip_error("a\x00b") == "a\\x00b"
    assert len(clip_error("x" * 200_000)) == 65_536
    assert clip_error(KeyError("k")) == "KeyError('k')"
