"""A whole history: every contact's life over the span, in time order, with the truth.

Contact by contact: who it is (:mod:`.population`), when it appears, whether
and when it converts, then each behaviour (:mod:`.behaviour`) up to its
conversion and as a customer after it. A live stream draws the same people
again for each new stretch of time (``people``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from stream_scorer.events import CONTACT_UPDATED
from stream_scorer.review.simulation.behaviour import Actor, Behaviour
from stream_scorer.review.simulation.population import (
    DEPARTMENTS,
    SENIORITIES,
    TITLES,
    Person,
    SyntheticContact,
    draw_companies,
    draw_person,
)
from stream_scorer.review.simulation.site import ASSETS
from stream_scorer.review.simulation.timeline import DAY, HOUR, MIN, SEC, Raw
from stream_scorer.times import format_ms

#: The start of a simulation when none is given, so that a seed alone fixes the output.
DEFAULT_START = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class SimulatedHistory:
    """Events in time order (not yet numbered), conversions and the hidden truth."""

    events: list[Raw]
    conversions: dict[str, int]
    contacts: list[SyntheticContact]


class Generator(Behaviour):
    """Draws one history: the calendar, the companies, then each contact's life.

    With ``people`` (the :attr:`people` of an earlier generator), the contacts
    are those people again, with their current attributes, and only their
    behaviour is drawn anew.
    """

    def __init__(
        self,
        contacts: int,
        days: int,
        seed: int,
        start: datetime,
        people: list[Person] | None = None,
    ) -> None:
        if contacts < 0 or days < 1:
            raise ValueError("contacts must be >= 0 and days >= 1")
        super().__init__(days, seed, start)
        self.n_contacts = contacts
        self.conversions: dict[str, int] = {}
        self.truth: list[SyntheticContact] = []
        self.known = people
        self.people: list[Person] = []
        self.companies = draw_companies(self.rng, max(1, contacts // 3)) if people is None else []

    def contact(self, i: int) -> None:
        """Who contact ``i`` is, its conversion and every behaviour of it."""
        rng = self.rng
        known = self.known
        person = draw_person(rng, f"c-{i}", self.companies) if known is None else known[i]
        self.people.append(person)
        cid, tz, attributes = person.cid, person.tz, person.attributes
        p, intent, activity = person.propensity, person.intent, person.activity
        competitor, job_seeker, personal = person.competitor, person.job_seeker, person.personal
        seniority, department = person.seniority, person.department

        # When the contact appears: a third are in the database already, the rest arrive.
        span = self.end - self.start
        if rng.random() < 0.35:
            arrival = self.start + self.below(max(1, min(span // 4, 3 * DAY)))
        else:
            arrival = self.start + self.below(max(1, span * 3 // 4))
            arrival = self.at(arrival, self.start, self.end, tz)
        self.emit(arrival, cid, CONTACT_UPDATED, dict(attributes))
        first = arrival + SEC

        converted_at: int | None = None
        if rng.random() < p:
            lead = min(14 * DAY, (self.end - first) // 2)
            low = first + lead
            high = self.end - HOUR
            if high > low:
                converted_at = self.at(self.uniform(low, high), low, high, tz)
        stop = converted_at if converted_at is not None else self.end
        cold = self.end
        if rng.random() < 0.5:
            cold = first + int(rng.expovariate(1.0 / 45.0) * DAY)

        pages = self.page_weights(intent, job_seeker, competitor)
        s = Actor(cid, tz, first, stop, cold, pages, activity, intent)

        # Arriving contacts came through the website: a session and often a form.
        if arrival > self.start + 3 * DAY or rng.random() < 0.3:
            self.session(s, first, pages, stop)
            if rng.random() < 0.5:
                self.emit(first + 2 * MIN, cid, "form_submit", {"form_id": "newsletter"})
            elif rng.random() < 0.5:
                self.emit(first + 2 * MIN, cid, "content_download", {"asset": rng.choice(ASSETS)})
        elif rng.random() < 0.25:
            t = self.at(self.uniform(first, stop), first, stop, tz)
            self.emit(t, cid, "form_submit", {"form_id": "newsletter"})

        self.browsing(s)
        self.downloads(s, 2.5 if job_seeker else 1.8 if personal else 1.0)
        self.tire_kicking(s)
        self.emails(s, p, personal, job_seeker, competitor)
        self.webinar_visits(s, first, stop, min(0.35, 0.012 * intent))

        budget = False
        if converted_at is not None:
            length = self.between(10, 36) * DAY
            # A third of deals are sales-led (referrals, events, outbound): little to see online.
            depth = rng.uniform(0.05, 0.35) if rng.random() < 0.35 else rng.uniform(0.7, 1.3)
            budget = self.journey(s, max(first, converted_at - length), converted_at, depth, 0.45)
            self.customer(s, converted_at)
            self.conversions[cid] = converted_at
        elif competitor or rng.random() < min(0.8, 1.8 * p):
            length = self.between(7, 31) * DAY
            if self.end - 5 * DAY > first:
                begin = self.uniform(first, self.end - 5 * DAY)
                depth = 0.25 if competitor else rng.uniform(0.3, 0.9)
                budget = self.journey(s, begin, min(self.end, begin + length), depth, 0.2)
        if budget:
            attributes["budget_confirmed"] = True

        if rng.random() < 0.05 and seniority != "executive" and not job_seeker:
            promoted = SENIORITIES[SENIORITIES.index(seniority) - 1]
            new_title = rng.choice(TITLES[promoted]).format(d=DEPARTMENTS[department])
            t = self.uniform(first + 7 * DAY, self.end)
            change = {"job_title": new_title, "seniority": promoted}
            if t < self.end:
                self.emit(t, cid, CONTACT_UPDATED, change)
                attributes.update(change)
                person.seniority = promoted

        self.truth.append(SyntheticContact(cid, p, converted_at, attributes))

    def run(self) -> SimulatedHistory:
        for i in range(self.n_contacts):
            self.contact(i)
        self.events.sort()
        return SimulatedHistory(self.events, self.conversions, self.truth)


def draw_history(contacts: int, days: int, seed: int, start: datetime | None) -> SimulatedHistory:
    return Generator(contacts, days, seed, start or DEFAULT_START).run()


def generate(
    contacts: int, days: int, *, seed: int = 0, start: datetime | None = None
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Event documents in time order and conversions (contact id -> epoch ms), in memory.

    For tests and notebooks; :func:`simulate` writes the same history to files.
    """
    history = draw_history(contacts, days, seed, start)
    docs = [
        {
            "event_id": f"sim{seed}-{n:08d}",
            "contact_id": contact,
            "type": type_,
            "occurred_at": format_ms(t),
            "properties": dict(props),
        }
        for n, (t, _, contact, type_, props) in enumerate(history.events)
    ]
    return docs, dict(history.conversions)


def generate_contacts(
    contacts: int, days: int, *, seed: int = 0, start: datetime | None = None
) -> list[SyntheticContact]:
    """The hidden truth of the history :func:`generate` draws with the same arguments."""
    return draw_history(contacts, days, seed, start).contacts
