"""Stored states: decoding is total, and every format reads back the record it was given.

(That a stored state goes on exactly like the original, in every format,
is property 8b of test_engine_properties.py; that the current format's
incremental encoding of awards reads back as the state is property 8c.)
"""

from __future__ import annotations

import json

import msgspec
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from stream_scorer.scoring import ContactState, event_key, load_model
from stream_scorer.scoring.codec import (
    FORMAT,
    FORMATS,
    StateFormatError,
    decode_state,
    encode_state,
)
from stream_scorer.scoring.state import seen_key_of, seen_key_text

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

_times = st.integers(-(2**40), 2**40)
_names = st.text(max_size=4)
#: Format 3's record with the right shape and any values: indexes out of range, odd
#: lengths and negative times included.
records_3 = st.tuples(
    st.none() | _times,
    st.none() | _times,
    st.dictionaries(_names, json_values, max_size=3),
    st.lists(st.integers(-2, 3), max_size=4),
    st.dictionaries(_names, st.integers(-2, 3), max_size=2),
    st.lists(_times, max_size=3),
    st.lists(st.tuples(_names, _names, st.none() | _names, st.none() | _times), max_size=3),
    _times,
    st.lists(st.tuples(st.integers(-2, 3), st.integers(-99, 99), _names, _times), max_size=4),
    st.just([]),
    st.dictionaries(_names, st.lists(st.lists(_times, max_size=3), max_size=3), max_size=2),
    st.dictionaries(_names, st.lists(st.integers(-5, 5), max_size=3), max_size=2),
    st.lists(_names, max_size=2),
    st.dictionaries(_names, st.lists(_times, max_size=3), max_size=2),
    st.dictionaries(_names, st.lists(_names, max_size=2), max_size=2),
    st.binary(max_size=48),
    st.none() | _times,
    st.just(0),
    st.integers(-1, 3),
).map(lambda r: b"\x03" + msgspec.msgpack.encode(list(r)))


@settings(max_examples=800, deadline=None)
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
        st.binary(max_size=64).map(lambda b: b"\x03" + b),
        st.lists(json_values, min_size=19, max_size=19).map(
            lambda v: b"\x03" + msgspec.msgpack.encode(v)
        ),
        records_3,
    )
)
# Found by CI: an infinite attribute, which format 1 would write as null.
@example(
    raw=b"\x03\xdc\x00\x13\x00\x00\x83\xa2\x00\x00\x00\xa1\x00\x00\xa0\xcb\x7f\xf0\x00\x00"
    b"\x00\x00\x00\x00\x93\x00\x00\x00\x80\x91\x00\x90\x00\x90\x90\x80\x80\x90\x80\x80"
    b"\xc4\x00\x00\x00\x00"
)
def test_any_bytes_give_a_state_or_a_format_error(raw: bytes) -> None:
    outcome = decode_or_error(raw)
    assert isinstance(outcome, ContactState) or str(outcome)
    if isinstance(outcome, ContactState):  # what decodes can be written back, in each format
        for format in FORMATS:
            again = decode_state(encode_state(outcome, format), MODEL)
            assert again.to_json() == outcome.to_json()


def decode_or_error(raw: bytes, log: bytes | None = None) -> ContactState | StateFormatError:
    """The state, or the typed error; any other exception fails the test."""
    try:
        return decode_state(raw, MODEL, log)
    except StateFormatError as exc:
        return exc


@pytest.mark.parametrize("format", [2, 3])
@pytest.mark.parametrize(
    "value",
    [
        float("inf"),
        float("-inf"),
        float("nan"),
        [1, {"deep": float("inf")}],
        b"bytes",
        msgspec.msgpack.Ext(1, b"x"),
        {1: "a key that is a number"},
    ],
    ids=["inf", "-inf", "nan", "nested-inf", "bytes", "ext", "number-key"],
)
def test_attribute_values_no_event_carries_are_a_format_error(format: int, value: object) -> None:
    """MessagePack holds them, JSON does not: read, they would change in format 1."""
    state = decode_state(
        json.dumps(
            {
                "clock": 5,
                "attributes": {"country": "US", "score": 1},
                "attribute_times": {"country": 4, "score": 4},
            }
        ).encode(),
        MODEL,
    )
    record = msgspec.msgpack.decode(encode_state(state, format)[1:])
    # The same record reads with a nested JSON value, so only the value below is refused.
    record[2] = {"country": "US", "score": [1.5, {"k": None, "b": True}]}
    read = decode_state(bytes([format]) + msgspec.msgpack.encode(record), MODEL)
    assert read.attributes["score"] == [1.5, {"k": None, "b": True}]
    record[2] = {"country": "US", "score": value}  # the attributes, in both formats
    with pytest.raises(StateFormatError, match=f"format {format}"):
        decode_state(bytes([format]) + msgspec.msgpack.encode(record), MODEL)


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


def format_3(**fields: object) -> bytes:
    """A format-3 value: an empty record with ``fields`` set."""
    record: dict[str, object] = {
        "clock": 1000,
        "swept": None,
        "attributes": {},
        "attribute_times": [],
        "dropped": {},
        "times": [],
        "kinds": [],
        "base": 1000,
        "awards": [],
        "fit": [],
        "history": {},
        "totals": {},
        "once": [],
        "pending": {},
        "tiers": {},
        "seen": b"",
        "forgot_until": None,
        "chunks": 0,
        "skip": 0,
    }
    record.update(fields)
    return b"\x03" + msgspec.msgpack.encode(list(record.values()))


def test_an_empty_format_3_record_reads_as_a_new_contact() -> None:
    assert decode_state(format_3(), MODEL).to_json() == ContactState(clock=1000).to_json()


@pytest.mark.parametrize(
    ("fields", "what"),
    [
        ({"kinds": [], "awards": [[0, 5, "e1", 0]]}, "an award of a kind not written"),
        ({"kinds": [["r", "s", None, None]], "awards": [[-1, 5, "e1", 0]]}, "a negative kind"),
        ({"seen": b"\x00" * 15}, "a key without its time"),
        ({"attributes": {"a": 1}, "attribute_times": []}, "an attribute without a time index"),
        ({"attributes": {"a": 1}, "attribute_times": [0]}, "a time index beyond the times"),
        ({"dropped": {"a": -1}}, "a removed attribute without a time"),
        ({"history": {"r": [[1, 2, 3]]}}, "a history entry of three"),
        ({"totals": {"r": [1]}}, "a running total of one"),
        ({"seen": b"\x00" * 16, "skip": 2}, "more ids forgotten than remembered"),
        ({"chunks": 1}, "a log that is not there"),
        ({"chunks": -1}, "a negative count of chunks"),
    ],
)
def test_a_damaged_format_3_record_is_a_format_error(fields: dict[str, object], what: str) -> None:
    with pytest.raises(StateFormatError, match="format 3 that cannot be read"):
        decode_state(format_3(**fields), MODEL)


@given(st.integers(-(2**63), 2**63 - 1))
def test_a_remembered_key_written_in_format_1_reads_back_as_itself(key: int) -> None:
    assert seen_key_of(seen_key_text(key)) == key


def test_an_older_release_s_event_ids_read_as_their_keys() -> None:
    # Releases before format 3 remembered the ids themselves.
    raw = b'{"clock": 1000, "seen": {"e-1": 900, "#not-sixteen-hex": 950}}'
    state = decode_state(raw, MODEL)
    assert state.seen == {event_key("e-1"): 900, event_key("#not-sixteen-hex"): 950}
    again = decode_state(
        b"\x02"
        + msgspec.msgpack.encode([1000, None, {}, {}, [], [], {}, {}, [], {}, {}, {"e-1": -100}]),
        MODEL,
    )
    assert again.seen == {event_key("e-1"): 900}


_chunks = st.lists(
    st.tuples(
        st.lists(st.tuples(st.integers(-1, 2), st.integers(-9, 9), _names, _times), max_size=3),
        st.binary(max_size=40),
    ),
    max_size=3,
)


@settings(max_examples=400, deadline=None)
@given(
    st.integers(0, 4),
    st.integers(-1, 5),
    st.lists(st.tuples(_names, _names, st.none() | _names, st.none() | _times), max_size=3),
    st.one_of(
        st.none(),
        st.binary(max_size=80),
        _chunks.map(lambda cs: b"".join(msgspec.msgpack.encode(c) for c in cs)),
    ),
)
def test_any_log_gives_a_state_or_a_format_error(
    chunks: int, skip: int, kinds: list[object], log: bytes | None
) -> None:
    state = decode_or_error(format_3(chunks=chunks, skip=skip, kinds=kinds), log)
    if isinstance(state, StateFormatError):
        assert str(state)
        return
    for format in FORMATS:
        assert decode_state(encode_state(state, format), MODEL).to_json() == state.to_json()


@pytest.mark.parametrize(
    "text", ["#0123456789ABCDEF", "# 123456789abcdef", "#0123_56789abcdef", "#0123456789abcde"]
)
def test_only_a_key_as_this_release_writes_it_is_read_as_a_key(text: str) -> None:
    # Anything else is an id an older release remembered, and is hashed like one.
    assert seen_key_of(text) == event_key(text)
