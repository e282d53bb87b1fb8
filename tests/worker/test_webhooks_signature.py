"""Webhook signatures: bound to the alert id and a time, checked as the docs tell receivers to."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from stream_scorer.worker.webhooks import signature, verify_signature

ROOT = Path(__file__).resolve().parents[2]
SECRET = "hook-secret"
NOW = 1_760_000_000
A1 = "a1" * 20  # alert ids as the scorer makes them: 40 lowercase hex digits
A2 = "b2" * 20
BODY = b'{"alert_id": "' + A1.encode() + b'", "contact_id": "c-1"}'

Verify = Callable[..., bool]


def documented() -> Verify:
    """The ``verify_signature`` receivers copy from docs/consuming-alerts.md."""
    text = (ROOT / "docs" / "consuming-alerts.md").read_text()
    blocks = [
        b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "def verify_signature" in b
    ]
    assert len(blocks) == 1
    scope: dict[str, object] = {}
    exec(blocks[0], scope)
    check = scope["verify_signature"]
    assert callable(check)
    return check  # type: ignore[no-any-return]


@pytest.fixture(params=["sink", "docs"])
def verify(request: pytest.FixtureRequest) -> Verify:
    return verify_signature if request.param == "sink" else documented()


def test_a_signature_verifies_for_its_body_alert_id_and_time(verify: Verify) -> None:
    header = signature(SECRET, NOW, A1, BODY)
    assert header.startswith("v1=")
    assert verify(SECRET, str(NOW), A1, BODY, header, now=NOW)
    assert verify(SECRET, str(NOW), A1, BODY, header, now=NOW + 299)
    assert verify(SECRET, str(NOW), A1, BODY, header, now=NOW - 299)  # a clock a bit behind


def test_a_changed_body_alert_id_secret_or_timestamp_fails(verify: Verify) -> None:
    header = signature(SECRET, NOW, A1, BODY)
    assert not verify(SECRET, str(NOW), A1, BODY + b" ", header, now=NOW)
    assert not verify(SECRET, str(NOW), A2, BODY, header, now=NOW)
    assert not verify("other-secret", str(NOW), A1, BODY, header, now=NOW)
    assert not verify(SECRET, str(NOW + 1), A1, BODY, header, now=NOW)


def test_an_alert_id_that_is_not_ascii_fails_without_raising(verify: Verify) -> None:
    header = signature(SECRET, NOW, A1, BODY)
    for alert_id in (A1[:-1] + "\u00e9", A1[:-1] + "\udcff"):  # a header, surrogateescaped
        assert not verify(SECRET, str(NOW), alert_id, BODY, header, now=NOW)


def test_an_old_or_far_future_timestamp_fails_even_with_a_good_signature(verify: Verify) -> None:
    header = signature(SECRET, NOW, A1, BODY)
    assert not verify(SECRET, str(NOW), A1, BODY, header, now=NOW + 301)
    assert not verify(SECRET, str(NOW), A1, BODY, header, now=NOW + 86_400)
    assert not verify(SECRET, str(NOW), A1, BODY, header, now=NOW - 301)
    assert verify(SECRET, str(NOW), A1, BODY, header, tolerance_seconds=3600, now=NOW + 3000)
    assert not verify(SECRET, str(NOW), A1, BODY, header, tolerance_seconds=60, now=NOW + 61)


@pytest.mark.parametrize(
    "alert_id",
    [
        "a-1",
        A1.upper(),
        A1 + "0",
        A1[:-1],
        A1[:-1] + ".",
        A1[:-1] + "\n",
        " " + A1[1:],
        "",
    ],
)
def test_an_alert_id_the_scorer_does_not_make_fails_even_when_signed(
    verify: Verify, alert_id: str
) -> None:
    header = signature(SECRET, NOW, alert_id, BODY)
    assert not verify(SECRET, str(NOW), alert_id, BODY, header, now=NOW)


def test_a_dot_in_the_alert_id_cannot_move_text_between_id_and_body(verify: Verify) -> None:
    """``<ts>.<id>.<body>`` reads one way only because an id has no dot."""
    moved_id, moved_body = A1 + "." + A2, b"{}"  # signs the text of (A1, A2 + ".{}")
    header = signature(SECRET, NOW, A1, A2.encode() + b"." + moved_body)
    assert header == signature(SECRET, NOW, moved_id, moved_body)
    assert verify(SECRET, str(NOW), A1, A2.encode() + b"." + moved_body, header, now=NOW)
    assert not verify(SECRET, str(NOW), moved_id, moved_body, header, now=NOW)


@pytest.mark.parametrize(
    "stamp", ["", "-1", "1e9", " 1760000000", "\uff11\uff17\uff16", "9" * 13, "1760000000.5"]
)
def test_a_malformed_timestamp_fails(verify: Verify, stamp: str) -> None:
    assert not verify(SECRET, stamp, A1, BODY, signature(SECRET, NOW, A1, BODY), now=NOW)


@pytest.mark.parametrize("header", ["", "v1=", "sha256=00", "v1=zz", "v1=\u00e9", "v1=\udcff"])
def test_a_malformed_signature_fails(verify: Verify, header: str) -> None:
    assert not verify(SECRET, str(NOW), A1, BODY, header, now=NOW)


def test_the_sink_checks_with_the_wall_clock_by_default() -> None:
    import time

    stamp = int(time.time())
    header = signature(SECRET, stamp, A1, BODY)
    assert verify_signature(SECRET, str(stamp), A1, BODY, header)
    assert verify_signature(SECRET, stamp, A1, BODY, header)  # an int is taken too
    assert not verify_signature(
        SECRET, str(stamp - 600), A1, BODY, signature(SECRET, stamp - 600, A1, BODY)
    )


def test_both_compare_in_constant_time() -> None:
    """Timing cannot be tested here; the code can: no ``==`` on the signature."""
    import inspect

    text = (ROOT / "docs" / "consuming-alerts.md").read_text()
    for source in (inspect.getsource(verify_signature), text):
        assert "hmac.compare_digest(" in source
        assert "== signature" not in source
        assert "signature ==" not in source


def test_the_sink_takes_exactly_the_ids_the_scorer_makes(verify: Verify) -> None:
    from stream_scorer.scoring import Crossing, alert_id, load_model
    from stream_scorer.worker.webhooks import is_alert_id

    crossing = Crossing("c-1", "engagement", "mql", "up", 61, 55, 60, "e-1", 0, 61)
    made = alert_id(crossing, load_model(ROOT / "config" / "scoring.yaml"))
    assert re.fullmatch(r"[0-9a-f]{40}", made)
    assert is_alert_id(made)
    assert not is_alert_id(made.upper())
    assert not is_alert_id(made + "\n")
    assert not is_alert_id(None)
    assert verify(SECRET, str(NOW), made, BODY, signature(SECRET, NOW, made, BODY), now=NOW)
