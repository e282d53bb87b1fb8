"""Stored states: decoding is total, and every format reads back the record it was given.

(That a stored state goes on exactly like the original, in the current
format and in format 1, is property 8b of test_engine_properties.py.)
"""

from __future__ import annotations

import json

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_scorer.scoring import ContactState, load_model
from stream_scorer.scoring.codec import (
    FORMAT,
    FORMATS,
    StateFormatError,
    decode_state,
    encode_state,
)

MODEL = load_model("config/scoring.yaml")

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=64),
        st.binary(max_size=64).map(lambda b: b"{" + b),
        st.binary(max_size=64).map(lambda b: b"\x02" + b),
        json_values.map(lambda v: json.dumps(v).encode()),
        json_values.map(lambda v: b"\x02" + msgspec.msgpack.encode(v)),
        st.lists(json_values, min_size=12, max_size=12).map(
            lambda v: b"\x02" + msgspec.msgpack.encode(v)
        ),
    )
)
def test_any_bytes_give_a_state_or_a_format_error(raw: bytes) -> None:
    outcome = decode_or_error(raw)
    assert isinstance(outcome, ContactState) or str(outcome)
    if isinstance(outcome, ContactState):  # what decodes can be written back, in each format
        for format in FORMATS:
            again = decode_state(encode_state(outcome, format), MODEL)
            assert again.to_json() == outcome.to_json()


def decode_or_error(raw: bytes) -> ContactState | StateFormatError:
    """The state, or the typed error; any other exception fails the test."""
    try:
        return decode_state(raw, MODEL)
    except StateFormatError as exc:
        return exc


def test_unknown_formats_name_their_first_byte() -> None:
    with pytest.raises(StateFormatError, match="first byte 07"):
        decode_state(b"\x07whatever", MODEL)
    with pytest.raises(StateFormatError, match="first byte nothing"):
        decode_state(b"", MODEL)


def test_the_current_format_is_smaller_than_format_1() -> None:
    state = decode_state(
        json.dumps(
            {
                "clock": 1_764_547_200_000,
                "attributes": {"country": "US", "job_title": "VP Sales"},
                "attribute_times": {"country": 1_764_547_100_000},
                "awards": [
                    {
                        "rule": "pricing-page",
                        "score": "engagement",
                        "category": "behavior",
                        "points": 10,
                        "event_id": f"e-{i}",
                        "at": 1_764_547_000_000 + i,
                        "expires_at": 1_767_139_000_000,
                    }
                    for i in range(5)
                ],
                "seen": {f"e-{i}": 1_764_547_000_000 + i for i in range(5)},
            }
        ).encode(),
        MODEL,
    )
    stored = encode_state(state)
    assert stored[0] == FORMAT
    assert decode_state(stored, MODEL).to_json() == state.to_json()
    assert len(stored) < 0.6 * len(json.dumps(state.to_json()))


@pytest.mark.parametrize(
    "raw",
    [
        b'{"clock": 1000, "seen": {"e1": 1.5}}',  # an event time that is not an integer
        b'{"clock": 1000, "seen": {"e1": "x"}}',
        b'{"clock": 1000, "attribute_times": {"country": null}}',
        b'{"clock": "soon"}',
        b'{"awards": [{"rule": "r"}]}',
    ],
)
def test_a_state_of_the_wrong_types_is_a_format_error_not_a_later_crash(raw: bytes) -> None:
    # It would decode loosely and then break the encoder or the engine, outside
    # the one contact's isolation.
    with pytest.raises(StateFormatError, match="format 1 that cannot be read"):
        decode_state(raw, MODEL)
    with pytest.raises(StateFormatError, match="format 2 that cannot be read"):
        decode_state(b"\x02" + msgspec.msgpack.encode(json.loads(raw)), MODEL)


def test_a_record_messagepack_cannot_hold_is_written_in_format_1() -> None:
    # Integers beyond 64 bits: only states from before the event limits hold them.
    state = decode_state(b'{"clock": 1000, "attributes": {"n": 18446744073709551617}}', MODEL)
    stored = encode_state(state, 2)
    assert stored[:1] == b"{"
    assert decode_state(stored, MODEL).attributes == {"n": 18446744073709551617}
