"""The worker's HTTP API, served by Faust's web server.

- ``POST /events``: one event or a JSON array of events, for producers with no
  Kafka client, at most :data:`MAX_EVENTS_PER_REQUEST` (more answers 413).
  All are validated first; any problem answers 422 listing the first
  :data:`MAX_PROBLEMS_LISTED` with their total, and nothing is sent. Valid
  events are published to the events topic keyed by contact and acknowledged
  by Kafka before the 202 answer.
  The body must be sent as JSON (``Content-Type: application/json`` or
  ``application/*+json``, UTF-8): anything else answers 415, so that a web
  page cannot post events cross-site as a "simple" ``text/plain`` form. A
  body over ``SCORER_API_MAX_BODY_BYTES`` answers 413, read no further than
  that; a body whose chunked framing or ``Content-Encoding`` is broken
  answers 400. When ``SCORER_API_TOKEN`` is set, a request without
  ``Authorization: Bearer <token>`` answers 401.
- ``GET /contacts/{contact_id}``: every score with its tiers, class digit
  form, gates, categories and the live awards that explain it; 404 if the
  contact is unknown (or expired).
- ``GET /leaderboard?score=engagement&limit=50``: the top contacts by a score,
  from a sorted set kept by the store (no key scans).
- ``GET /dashboard``: a live page (no build step) fed by ``GET /dashboard/data``:
  events per second, alerts per minute, consumer lag, the score distribution,
  the top leads and the latest alerts. With a token, open it as
  ``/dashboard?token=<token>`` (query tokens are accepted on every route).
- ``GET /metrics``: Prometheus text format (:mod:`stream_scorer.worker.metrics`); like the
  health checks, open without the token, for scrapers and probes.
- ``GET /livez``: the process answers. ``GET /readyz``: Redis answers, the
  worker owns partitions of the events topic, and it is not stalled (no
  retried operation failing and no consume loop stuck for longer than
  ``SCORER_STALL_SECONDS``, see :mod:`.health`); 503 otherwise, with the reason.

Nothing else is served: Faust's own views (``/``, ``/router``, ``/table``,
``/graph``, ``/assignment``, ``/performance``, whatever its settings or ``APP_*``
variables turn on) expose topology and internals, so every route that is not
one of the above answers 404, token or not. :func:`exposure_problem` is why a
worker refuses to serve a non-loopback address without a token; on loopback
without one, every route but the health checks and ``/metrics`` answers 403
to a ``Host`` that does not name this machine (:func:`host_name`): a page on
``attacker.example`` whose name resolves to 127.0.0.1 (DNS rebinding) gets nothing.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any, cast

import aiohttp.web
import faust
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Handler
from faust.web import Request, Response, View

from stream_scorer.errors import ConfigError, InvalidEvent
from stream_scorer.events import Event, encode_event, validate
from stream_scorer.scoring import ScoringModel, award_record, explain
from stream_scorer.scoring.codec import StateFormatError
from stream_scorer.settings import Settings
from stream_scorer.times import isoformat_ms
from stream_scorer.worker.health import Health
from stream_scorer.worker.metrics import CONTENT_TYPE, Metrics
from stream_scorer.worker.pipeline import event_limits
from stream_scorer.worker.store import RedisStore

Send = Callable[[Event], Awaitable[Any]]


#: Names that always mean this host; any IP in 127.0.0.0/8 or ::1 does too.
LOOPBACK_NAMES = frozenset({"localhost"})

#: What a tokenless loopback server answers to in ``Host``, besides its bind address.
LOCAL_HOST_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})

#: Events one ``POST /events`` may carry: each is validated on the loop that also scores.
MAX_EVENTS_PER_REQUEST = 1000

#: Problems a 422 lists (``problem_count`` has them all): the answer stays small.
MAX_PROBLEMS_LISTED = 100


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` serves only this machine (names other than localhost: no)."""
    name = host.strip().removeprefix("[").removesuffix("]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False  # a name that resolves elsewhere, an empty or a malformed host
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def exposure_problem(settings: Settings, host: str | None = None) -> str | None:
    """Why serving the API on ``host`` (default ``SCORER_WEB_HOST``) is refused, if it is.

    Open to the network with no token, anyone who reaches the port could post
    events and read every contact: that takes ``SCORER_WEB_ALLOW_NO_TOKEN``,
    for a network or proxy that guards the port itself.
    """
    host = settings.web_host if host is None else host
    if settings.api_token or settings.web_allow_no_token or is_loopback(host):
        return None
    source = "" if host == settings.web_host else " (Faust's WEB_BIND overrides SCORER_WEB_HOST)"
    return (
        f"the web server would listen on {host!r}{source}, which is not a loopback address, "
        "and SCORER_API_TOKEN is not set: anyone who reaches it could post events and "
        "read contacts. Set SCORER_API_TOKEN, bind SCORER_WEB_HOST=127.0.0.1, or set "
        "SCORER_WEB_ALLOW_NO_TOKEN=true if something in front guards the port."
    )


def is_json(content_type: str, charset: str | None) -> bool:
    """Whether a body so labelled is JSON: ``application/json`` or ``application/*+json``, UTF-8.

    Browsers send ``text/plain``, forms and multipart cross-site without asking;
    a JSON type needs a CORS preflight that this server never grants.
    """
    kind = content_type.strip().lower()
    json_type = kind == "application/json" or (
        kind.startswith("application/") and kind.endswith("+json")
    )
    return json_type and (charset is None or charset.strip().lower() in {"utf-8", "utf8"})


class MalformedBody(Exception):
    """The body's chunked framing or ``Content-Encoding`` is broken: the client's fault."""


async def read_body(request: aiohttp.web.Request, limit: int) -> bytes | None:
    """The whole body, or None as soon as it is over ``limit`` bytes.

    Reads until the end, not what happens to be buffered; stops at ``limit`` + 1
    bytes whatever ``Content-Length`` says (chunked and gzip bodies have none
    that counts), so a huge body is never held in memory. Raises
    :class:`MalformedBody` when aiohttp cannot decode it.
    """
    if (request.content_length or 0) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    try:
        while chunk := await request.content.read(limit + 1 - size):
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
    # The C parser wraps decoding errors in RequestPayloadError, the pure-Python one does not.
    except (aiohttp.web.RequestPayloadError, HttpProcessingError) as exc:
        # Done with: else aiohttp reads it again after the answer, and logs the error.
        request.content.feed_eof()
        raise MalformedBody(str(exc)) from exc
    return b"".join(chunks)


def host_name(header: str) -> str | None:
    """The name or address in a ``Host`` header, without brackets or port; None if malformed."""
    value = header.strip().lower()
    if value.startswith("["):
        name, bracket, port = value[1:].partition("]")
        if not bracket:
            return None
    elif value.count(":") == 1:
        name, colon, port = value.partition(":")
        port = colon + port
    else:
        name, port = value, ""  # no port (or an unbracketed IPv6 address)
    digits = port.removeprefix(":")
    if port and (port == digits or not (digits.isascii() and digits.isdigit())):
        return None
    return name


def token_matches(given: str, token: str) -> bool:
    """Constant-time comparison that never raises.

    aiohttp decodes header bytes that are not UTF-8 to lone surrogates;
    ``surrogatepass`` encodes any str, so they just fail to match.
    """
    encoded = given.encode("utf-8", "surrogatepass")
    return bool(given) and hmac.compare_digest(encoded, token.encode("utf-8", "surrogatepass"))


def install(
    app: faust.App,
    settings: Settings,
    model: ScoringModel,
    store: RedisStore,
    send_event: Send,
    owned_partitions: Callable[[], list[int]],
    metrics: Metrics,
    health: Health | None = None,
) -> None:
    """Add the API's views to ``app``'s web server, and take every other route away.

    Raises :class:`ConfigError` when the server would listen on the network with
    no token (:func:`exposure_problem`), checked on the address Faust will bind:
    its own ``WEB_BIND`` variable overrides ``SCORER_WEB_HOST``.
    """
    bind = str(app.conf.web_bind)
    problem = exposure_problem(settings, bind)
    if problem is not None:
        raise ConfigError(problem)
    token = settings.api_token.get_secret_value() if settings.api_token else None
    # Only a tokenless loopback server needs it: on the network the token guards.
    local_names = None
    if token is None and is_loopback(bind):
        local_names = LOCAL_HOST_NAMES | {bind.strip().removeprefix("[").removesuffix("]").lower()}
    limit = settings.api_max_body_bytes
    limits = event_limits(settings)
    ours: set[str] = set()

    def route(path: str) -> Callable[[type[View]], type[View]]:
        """``app.page``, remembering the path as one of ours."""
        ours.add(path)
        return app.page(path)

    @aiohttp.web.middleware
    async def only_ours(
        request: aiohttp.web.Request, handler: Handler
    ) -> aiohttp.web.StreamResponse:
        """404 for every route but ours: Faust's views tell topology and table data."""
        match = request.match_info
        if match.http_exception is None:  # else aiohttp answers 404 or 405 itself
            resource = match.route.resource
            if resource is None or resource.canonical not in ours:
                return aiohttp.web.json_response({"error": "not found"}, status=404)
        return await handler(request)

    # Faust's web driver is aiohttp; its application is not running yet, so not frozen.
    web_app = cast(aiohttp.web.Application, cast(Any, app.web).web_app)
    web_app.middlewares.append(only_ours)

    def refused(view: View, request: Request) -> Response | None:
        if token is None:
            if local_names is None or host_name(request.headers.get("Host", "")) in local_names:
                return None
            return view.json(
                {
                    "error": "the Host header must name this machine "
                    "(localhost, 127.0.0.1 or [::1]); set SCORER_API_TOKEN to serve other names"
                },
                status=403,
            )
        given = request.headers.get("Authorization", "")
        given = given[7:] if given.startswith("Bearer ") else request.query.get("token", "")
        if token_matches(given, token):
            return None
        return view.json(
            {"error": "a bearer token is required"},
            status=401,
            headers={"WWW-Authenticate": "Bearer"},
        )

    class Guarded(View):
        """A view that needs the token, or without one a local Host (health and metrics do not)."""

        async def dispatch(self, request: Any) -> Any:
            denied = refused(self, request)
            return denied if denied is not None else await super().dispatch(request)

    def score_named(request: Request) -> str | None:
        """The ``score`` query parameter (default: the model's first score), if the model has it."""
        name = request.query.get("score") or next(iter(model.scores))
        return name if name in model.scores else None

    def no_such_score(view: View, request: Request) -> Response:
        known = ", ".join(model.scores)
        wanted = request.query.get("score")
        return view.json({"error": f"no score {wanted!r} (known: {known})"}, status=404)

    def malformed(detail: str) -> dict[str, Any]:
        return {"index": None, "reason": "malformed_json", "detail": detail}

    def invalid(view: View, problems: list[dict[str, Any]]) -> Response:
        """422 with the first problems and how many there are: a huge list costs the loop."""
        listed = problems[:MAX_PROBLEMS_LISTED]
        return view.json(
            {"error": "invalid events", "problems": listed, "problem_count": len(problems)},
            status=422,
        )

    async def ranked(name: str, limit: int) -> list[dict[str, Any]]:
        """The top ``limit`` contacts by score ``name``: value, display form and tiers."""
        rows = []
        for cid, state in await store.leaderboard(name, limit):
            value = state.values.get(name, 0)
            active = state.tiers.get(name, [])
            rows.append(
                {
                    "contact_id": cid,
                    "value": value,
                    "display": model.display(name, value, state.attributes),
                    "tiers": [t.name for t in model.scores[name].thresholds if t.name in active],
                }
            )
        return rows

    @route("/events")
    class Events(Guarded):
        async def post(self, request: Request) -> Response:
            http = cast(aiohttp.web.Request, request)  # Faust's web driver is aiohttp
            if not is_json(http.content_type, http.charset):
                return self.json(
                    {"error": "send the events as Content-Type: application/json (UTF-8)"},
                    status=415,
                )
            try:
                body = await read_body(http, limit)
            except MalformedBody:
                broken = self.json(
                    {"error": "the body's chunked framing or Content-Encoding is broken"},
                    status=400,
                )
                cast(aiohttp.web.Response, broken).force_close()  # what follows is not HTTP
                return broken
            if body is None:
                return self.json({"error": f"the body is over {limit} bytes"}, status=413)
            try:
                parsed = json.loads(body)
            except RecursionError:
                return invalid(self, [malformed("nested too deeply")])
            except ValueError as exc:
                return invalid(self, [malformed(str(exc))])
            items = parsed if isinstance(parsed, list) else [parsed]
            if len(items) > MAX_EVENTS_PER_REQUEST:  # before any is validated
                return self.json(
                    {
                        "error": f"{len(items)} events is over the limit of "
                        f"{MAX_EVENTS_PER_REQUEST} per request"
                    },
                    status=413,
                )
            problems: list[dict[str, Any]] = []
            events: list[Event] = []
            for index, item in enumerate(items):
                try:
                    if not isinstance(item, dict):
                        raise InvalidEvent("invalid_field", "an event is a JSON object")
                    event = validate(item, limits)
                    size = len(encode_event(event))
                    if size > limits.max_bytes:  # as the worker will read it
                        raise InvalidEvent(
                            "oversized", f"{size} bytes is over the limit of {limits.max_bytes}"
                        )
                    events.append(event)
                except InvalidEvent as exc:
                    problems.append({"index": index, "reason": exc.reason, "detail": exc.detail})
            if problems or not events:
                if not problems:
                    problems.append({"index": None, "reason": "empty", "detail": "no events"})
                return invalid(self, problems)
            await asyncio.gather(*[await send_event(e) for e in events])
            return self.json({"accepted": len(events)}, status=202)

    @route("/contacts/{contact_id}")
    class Contact(Guarded):
        async def get(self, request: Request, contact_id: str) -> Response:
            try:
                state = await store.read_state(contact_id)
            except StateFormatError as exc:  # a newer release's format, or a damaged value
                return self.json(
                    {"error": "the stored state cannot be read", "detail": str(exc)}, status=500
                )
            if state is None:
                return self.json({"error": f"no contact {contact_id!r}"}, status=404)
            scores = {}
            for name, e in explain(state, model).items():
                scores[name] = {
                    "value": e.value,
                    "display": e.display,
                    "tiers": e.tiers,
                    "gates": e.gates,
                    "categories": e.categories,
                    "awards": [award_record(a, isoformat_ms) for a in e.awards],
                }
            return self.json({"contact_id": contact_id, "scores": scores})

    @route("/leaderboard")
    class Leaderboard(Guarded):
        async def get(self, request: Request) -> Response:
            name = score_named(request)
            if name is None:
                return no_such_score(self, request)
            try:
                limit = int(request.query.get("limit", "50"))
            except ValueError:
                limit = 0
            if not 1 <= limit <= 500:
                return self.json({"error": "limit must be a number from 1 to 500"}, status=400)
            rows = await ranked(name, limit)
            return self.json({"score": name, "contacts": rows})

    page = resources.files("stream_scorer.worker").joinpath("web/dashboard.html").read_bytes()

    @route("/dashboard")
    class Dashboard(Guarded):
        async def get(self, request: Request) -> Response:
            return self.bytes(page, headers={"Content-Type": "text/html; charset=utf-8"})

    @route("/dashboard/data")
    class DashboardData(Guarded):
        async def get(self, request: Request) -> Response:
            name = score_named(request)
            if name is None:
                return no_such_score(self, request)
            score = model.scores[name]
            high = score.max if score.max is not None else max(100, score.min + 100)
            step = max(1, (high - score.min + 9) // 10)
            bins = [(lo, lo + step) for lo in range(score.min, high + 1, step)]
            counts = await store.distribution(name, bins)
            top = await ranked(name, 10)
            activity = metrics.activity
            alerts = [json.loads(a) for a in reversed(activity.latest_alerts)]
            lag = sum(
                int(sample.value) for family in metrics.lag.collect() for sample in family.samples
            )
            return self.json(
                {
                    "model": f"{model.name} v{model.version}",
                    "score": name,
                    "events_per_second": activity.events_per_second(),
                    "alerts_per_minute": activity.alerts_per_minute(),
                    "lag": lag,
                    "histogram": [
                        {"from": lo, "to": min(hi - 1, high), "count": n}
                        for (lo, hi), n in zip(bins, counts, strict=True)
                    ],
                    "top": top,
                    "alerts": alerts,
                }
            )

    @route("/metrics")
    class Prometheus(View):
        async def get(self, request: Request) -> Response:
            return self.bytes(metrics.render(), headers={"Content-Type": CONTENT_TYPE})

    @route("/livez")
    class Live(View):
        async def get(self, request: Request) -> Response:
            return self.json({"status": "live"})

    @route("/readyz")
    class Ready(View):
        async def get(self, request: Request) -> Response:
            checks: dict[str, bool] = {"partitions": bool(owned_partitions())}
            try:
                checks["redis"] = bool(await asyncio.wait_for(store.ping(), timeout=2))
            except Exception:  # any failure means not ready; the reason is not the caller's
                checks["redis"] = False
            stalled = None if health is None else health.problem()
            checks["progress"] = stalled is None
            ready = all(checks.values())
            body: dict[str, Any] = {"status": "ready" if ready else "not ready", "checks": checks}
            if stalled is not None:
                body["stalled"] = stalled  # what is failing, never a contact
            return self.json(body, status=200 if ready else 503)
