"""Decoding is total: any bytes and headers give an event or an InvalidEvent, nothing else.

And every event it accepts can be scored, explained and alerted on by each
shipped model without an exception.
"""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream_scorer.errors import InvalidEvent, ModelError
from stream_scorer.events import (
    DEFAULT_LIMITS,
    Event,
    Limits,
    decode_event,
    encode_event,
    event_decoder,
    limit_problem,
    validate,
)
from stream_scorer.scoring import (
    ContactState,
    advance_in_place,
    alert_payload,
    apply_in_place,
    award_record,
    explain,
    load_model,
    parse_model,
)
from stream_scorer.times import format_ms, isoformat_ms

ROOT = Path(__file__).resolve().parents[1]
MODELS = [
    load_model(path)
    for path in [
        ROOT / "config" / "scoring.yaml",
        *sorted((ROOT / "config/examples").glob("*.yaml")),
    ]
]
TYPES = sorted({t for m in MODELS for t in m.event_types})

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
times = st.sampled_from(
    ["2026-11-28T12:00:00Z", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-05:00", "x", 5]
) | st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat())
attribute_values = st.one_of(
    json_values, st.integers(min_value=-(10**400), max_value=10**400), st.floats()
)


def native(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "event_id": draw(st.text(max_size=5) | st.integers()),
        "contact_id": draw(st.sampled_from(["c-1", "c-2", "", "{x}"]) | st.text(max_size=5)),
        "type": draw(st.sampled_from(TYPES) | st.text(max_size=5)),
        "occurred_at": draw(times),
        "properties": draw(st.dictionaries(st.text(max_size=12), attribute_values, max_size=6)),
    }


@st.composite
def documents(draw: st.DrawFn) -> Any:
    base = native(draw)
    shape = draw(st.sampled_from(["native", "segment", "cloudevent", "any"]))
    if shape == "segment":
        return {
            "messageId": base["event_id"],
            "userId": base["contact_id"],
            "type": draw(st.sampled_from(["track", "page", "identify", "screen", 3, None])),
            "event": draw(st.sampled_from(["Email Opened", "Demo Request", "", None, 7])),
            "timestamp": base["occurred_at"],
            "properties": draw(json_values),
            "traits": draw(json_values),
            "name": draw(json_values),
        }
    if shape == "cloudevent":
        return {
            "specversion": "1.0",
            "id": base["event_id"],
            "type": base["type"],
            "time": base["occurred_at"],
            "subject": draw(st.sampled_from([base["contact_id"], None, 4])),
            "data": draw(json_values | st.just(base["properties"])),
        }
    if shape == "any":
        return draw(json_values)
    return base


def deep(levels: int, key: str = "messageId") -> bytes:
    return (f'{{"{key}": 1, "p": ' + "[" * levels + "]" * levels + "}").encode()


REASONS = {"empty", "oversized", "malformed_json", "missing_field", "invalid_field"}


def total(raw: bytes | None, headers: Any = None, limits: Limits = DEFAULT_LIMITS) -> Event | None:
    """The event, or None for an InvalidEvent with a known reason; anything else fails."""
    reason = ""
    try:
        return decode_event(raw, limits, headers)
    except InvalidEvent as exc:
        reason = exc.reason
    assert reason in REASONS
    return None


def scored_everywhere(event: Event) -> None:
    """Apply, explain, advance and publish with every shipped model: nothing may raise."""
    for model in MODELS:
        state = ContactState()
        effects = apply_in_place(state, event, model)
        for crossing in effects.crossings:
            json.loads(alert_payload(crossing, model))
        later = advance_in_place(state, 4_102_444_800_000, model, event.contact_id)  # 2100
        for crossing in later.crossings:
            json.loads(alert_payload(crossing, model))
        for explained in explain(state, model).values():
            for award in explained.awards:
                award_record(award, format_ms)
                award_record(award, isoformat_ms)
        assert ContactState.from_json(json.loads(json.dumps(state.to_json())), model).seen


headers_lists = st.none() | st.lists(
    st.tuples(
        st.sampled_from(["ce_specversion", "ce_id", "ce_type", "ce_time", "ce_subject", "x"]),
        st.none() | st.binary(max_size=12),
    ),
    max_size=6,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=st.none() | st.binary(max_size=200), headers=headers_lists)
def test_any_bytes_and_headers(raw: bytes | None, headers: Any) -> None:
    event = total(raw, headers)
    if event is not None:
        assert limit_problem(event) is None
        assert decode_event(encode_event(event)) == event  # what the API forwards reads back
        scored_everywhere(event)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=documents(), headers=headers_lists)
def test_any_json_document_in_any_format(document: Any, headers: Any) -> None:
    raw = json.dumps(document, allow_nan=True).encode()
    event = total(raw, headers)
    if event is not None:
        assert limit_problem(event) is None
        scored_everywhere(event)
    if isinstance(document, dict):
        with contextlib.suppress(InvalidEvent):
            validate(document)


GOOD = {
    "event_id": "e-1",
    "contact_id": "c-1",
    "type": "email_open",
    "occurred_at": "2026-11-28T12:00:00Z",
}


def reason_of(raw: bytes, headers: Any = None) -> str:
    with pytest.raises(InvalidEvent) as caught:
        decode_event(raw, DEFAULT_LIMITS, headers)
    return caught.value.reason


@pytest.mark.parametrize("key", ["messageId", "specversion"])
def test_deep_nesting_in_a_segment_or_cloudevent_is_malformed_not_a_crash(key: str) -> None:
    assert reason_of(deep(20_000, key)) == "malformed_json"


def test_deep_nesting_in_a_native_event_is_refused() -> None:
    assert reason_of(deep(20_000, "event_id")) == "malformed_json"


@pytest.mark.parametrize("properties", [5, "a string", [1, 2]])
def test_a_segment_page_whose_properties_are_not_an_object(properties: object) -> None:
    call = {
        "messageId": "m-1",
        "userId": "c-1",
        "type": "page",
        "timestamp": "2026-11-28T12:00:00Z",
        "properties": properties,
    }
    assert reason_of(json.dumps(call).encode()) == "invalid_field"


def test_a_binary_cloudevent_with_a_null_header_value() -> None:
    headers = [("ce_specversion", b"1.0"), ("ce_id", None), ("ce_type", b"email_open")]
    assert reason_of(b"{}", headers) in {"missing_field", "invalid_field"}


def test_an_event_before_1970_is_refused() -> None:
    raw = json.dumps({**GOOD, "occurred_at": "0001-01-01T00:00:00+01:00"}).encode()
    assert reason_of(raw) == "invalid_field"
    old = json.dumps({**GOOD, "occurred_at": "1969-12-31T23:59:59Z"}).encode()
    assert reason_of(old) == "invalid_field"
    assert decode_event(json.dumps({**GOOD, "occurred_at": "1970-01-01T00:00:00Z"}).encode())
    for late in ("2500-01-01T00:00:00Z", "9999-12-31T23:59:59-05:00"):
        assert reason_of(json.dumps({**GOOD, "occurred_at": late}).encode()) == "invalid_field"


@pytest.mark.parametrize("expires", ["36501d", "1000000w", 10**12, ".inf", ".nan"])
def test_a_model_duration_beyond_a_century_is_a_model_error(expires: object) -> None:
    text = (
        "version: 1\nname: m\nscores:\n  s: {min: 0, max: 100}\nrules:\n"
        f"  - {{id: r, score: s, on: {{type: email_open}}, points: 1, expires: {expires}}}\n"
    )
    with pytest.raises(ModelError, match="century"):  # YAML reads .inf and .nan as floats
        parse_model(text)
    assert parse_model(text.replace(f"expires: {expires}", "expires: 36500d"))


@pytest.mark.parametrize("number", [2**53, -(2**53), 10**400, float("inf"), float("nan")])
def test_numbers_beyond_the_safe_integers_or_not_finite_are_refused(number: float) -> None:
    raw = json.dumps({**GOOD, "properties": {"n": {"deep": [number]}}}).encode()
    assert reason_of(raw) == "invalid_field"
    for safe in (2**53 - 1, -(2**53) + 1):  # JavaScript's Number.MAX_SAFE_INTEGER
        assert decode_event(json.dumps({**GOOD, "properties": {"n": safe}}).encode())


def test_limits_on_depth_values_and_strings() -> None:
    limits = Limits(max_depth=2, max_values=3, max_string=5)

    def check(properties: object) -> Event:
        return decode_event(json.dumps({**GOOD, "properties": properties}).encode(), limits)

    assert check({"a": {"b": 1}})
    with pytest.raises(InvalidEvent, match="nested deeper than 2"):
        check({"a": {"b": {"c": 1}}})
    with pytest.raises(InvalidEvent, match="more than 3 values"):
        check({"a": 1, "b": 2, "c": 3, "d": 4})
    with pytest.raises(InvalidEvent, match="longer than 5"):
        check({"a": "abcdef"})
    with pytest.raises(InvalidEvent, match="key longer than 5"):
        check({"abcdef": 1})


def test_validate_applies_the_same_limits_as_decoding() -> None:
    for bad in (
        {**GOOD, "properties": {"n": 2**60}},
        {**GOOD, "occurred_at": "1900-01-01T00:00:00Z"},
    ):
        with pytest.raises(InvalidEvent):
            validate(bad)
        with pytest.raises(InvalidEvent):
            decode_event(json.dumps(bad).encode())
    assert validate(GOOD).occurred_at == datetime(2026, 11, 28, 12, tzinfo=UTC)
    with pytest.raises(InvalidEvent):
        validate("\ud800")


@pytest.mark.parametrize(
    "properties",
    [
        {"x": 10**5000},
        {"x": (2**60,)},
        {"x": ("a" * 100_000,)},
        {"x": {2**70}},
        {"x": {1: "a"}},
        {"x": b"bytes"},
    ],
)
def test_validate_refuses_what_json_cannot_carry(properties: dict[str, object]) -> None:
    with pytest.raises(InvalidEvent) as caught:
        validate({**GOOD, "properties": properties})
    assert caught.value.reason in REASONS


def test_the_backtests_fast_decoder_leaves_deep_lines_to_the_full_one() -> None:
    from stream_scorer.events import native_decoder

    line = json.dumps(GOOD).encode()[:-1] + b', "properties": {"x": ' + b"[" * 20_000
    line += b"1" + b"]" * 20_000 + b"}}"
    assert native_decoder({"email_open"})(line) is None
    assert reason_of(line) in {"malformed_json", "oversized"}


def outcome(decode: Any, raw: bytes | None, headers: Any) -> tuple[str, str]:
    """What a decoder makes of a message: the event's JSON, or the reason and detail."""
    try:
        return "event", decode(raw, headers).model_dump_json()
    except InvalidEvent as exc:
        return exc.reason, exc.detail


#: Times near the edges of what RFC 3339, msgspec and pydantic each accept.
tricky_times = st.sampled_from(
    [
        "2026-11-28t12:00:00z",
        "2026-11-28 12:00:00Z",
        "2026-11-28T12:00:00",
        "2026-11-28T12:00Z",
        "2026-11-28T12:00:00.1234567Z",
        "2026-11-28T23:59:59.9999995Z",
        "2026-11-28T12:00:00.123+05:30",
        "2026-11-28T12:00:00-00:00",
        "2026-11-28T23:59:60Z",
        "2026-11-28T24:00:00Z",
        "2026-02-30T12:00:00Z",
        "1969-12-31T23:59:59Z",
        "2500-01-01T00:00:00Z",
        "2026-11-28T12:00:00+24:00",
        "20261128T120000Z",
    ]
)


@st.composite
def native_lines(draw: st.DrawFn) -> bytes:
    """Native events as producers write them: each field valid or near its edge."""
    odd = native(draw)
    edge_ids = st.text(alphabet="ab", min_size=199, max_size=201)
    contacts = st.sampled_from(["c-1", "c-1\n", "c-\u00e9"])
    document = {
        "event_id": draw(st.just("e-1") | edge_ids | st.just(odd["event_id"])),
        "contact_id": draw(contacts | st.just(odd["contact_id"])),
        "type": draw(st.sampled_from(TYPES) | st.just(odd["type"])),
        "occurred_at": draw(tricky_times | times),
        "properties": draw(st.just({"url": "https://a.io/pricing"}) | st.just(odd["properties"])),
    }
    for key in draw(st.sets(st.sampled_from(sorted(document)), max_size=2)):
        if draw(st.booleans()):
            del document[key]
        else:
            document[key] = None
    raw = json.dumps(document, allow_nan=True).encode()
    if document and draw(st.booleans()):  # a field the event does not read, any bytes
        high = st.lists(st.integers(0x80, 0xFF), min_size=1, max_size=4).map(bytes)
        junk = draw(high | st.binary(max_size=6)).replace(b"\\", b"").replace(b'"', b"")
        name = draw(st.sampled_from([b"x", junk]))
        raw = raw[:-1] + b', "' + name + b'": ' + draw(unread_values(junk)) + b"}"
    if draw(st.integers(0, 3)) == 0:  # a key given twice: the last one counts, in both
        key = draw(st.sampled_from(sorted(odd)))
        raw = raw[:-1] + (b", " if document else b"") + json.dumps({key: odd[key]}).encode()[1:]
    return raw


def unread_values(junk: bytes) -> st.SearchStrategy[bytes]:
    """JSON for a field the event does not read, at the edges of what the full parser takes."""
    return st.sampled_from(
        [
            b'"ok"',
            b'"' + junk + b'"',
            b"9" * 4300,  # as many digits as Python reads
            b"-" + b"9" * 4301,  # one more
            b"1." + b"5" * 5000,
            b"[" * 199 + b"]" * 199,  # 200 levels with the event's own
            b"[" * 200 + b"]" * 200,  # one more
            b'{"a":' * 200 + b"1" + b"}" * 200,
        ]
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(TYPES),
    junk=st.binary(max_size=6).map(lambda b: b.replace(b"\\", b"").replace(b'"', b"")),
    data=st.data(),
)
def test_the_live_decoder_leaves_what_it_skips_to_the_full_parser(
    kind: str, junk: bytes, data: st.DataObject
) -> None:
    """A valid event with any unread field: what the full parser refuses is refused."""
    event = {**GOOD, "type": kind}
    raw = json.dumps(event).encode()[:-1] + b', "x": ' + data.draw(unread_values(junk)) + b"}"
    for known in MODELS:
        live, again, full = decisions(raw, None, known, DEFAULT_LIMITS)
        assert live == again == full


def decisions(
    raw: bytes | None, headers: Any, known: Any, limits: Limits
) -> tuple[tuple[str, str], tuple[str, str], tuple[str, str]]:
    """What the live decoder makes of a message, twice (its contact ids remembered the
    second time), and what :func:`decode_event` makes of it."""
    types = None if known is None else known.event_types
    live = event_decoder(types, limits)

    def full(raw: bytes | None, headers: Any) -> Event:
        return decode_event(raw, limits, headers)

    return outcome(live, raw, headers), outcome(live, raw, headers), outcome(full, raw, headers)


SMALL_LIMITS = Limits(max_bytes=110, max_string=3, max_values=2)


@settings(max_examples=1_500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    raw=native_lines(),
    known=st.sampled_from(MODELS),
    limits=st.sampled_from([DEFAULT_LIMITS, DEFAULT_LIMITS, SMALL_LIMITS]),
)
def test_the_live_decoder_reads_native_events_as_decode_event_does(
    raw: bytes, known: Any, limits: Limits
) -> None:
    """The worker's fast decoder gives the same events and the same reasons as the full one."""
    live, again, full = decisions(raw, None, known, limits)
    assert live == again == full


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    raw=documents().map(lambda d: json.dumps(d, allow_nan=True).encode())
    | st.none()
    | st.binary(max_size=120),
    headers=headers_lists,
    known=st.sampled_from([None, *MODELS]),
    limits=st.sampled_from([DEFAULT_LIMITS, SMALL_LIMITS]),
)
def test_the_live_decoder_decides_as_decode_event_for_any_input(
    raw: bytes | None, headers: Any, known: Any, limits: Limits
) -> None:
    """Any bytes, any format, any headers: the same event or the same reason."""
    live, again, full = decisions(raw, headers, known, limits)
    assert live == again == full
