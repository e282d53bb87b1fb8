"""How contacts behave: visits, downloads, e-mail, buying journeys, life as a customer.

Every behaviour is drawn at a rate that depends on the contact's intent in
its own way:

- strongly predictive: pricing page visits, webinar attendance, demo and
  trial requests, consultation requests, email replies;
- weakly predictive: content downloads (which the default model rewards
  generously);
- noise that everyone produces: email opens (including mail scanners that
  open and click everything within seconds), generic page visits, sessions,
  newsletter signups;
- negative: careers page visits (job seekers), unsubscribes, spam complaints
  and hard bounces (all rare).

A converter goes through a buying journey (sessions heavy on pricing, a
demo or trial, perhaps budget confirmed; a third of deals are sales-led and
leave little trace online) that ends in its conversion, then keeps producing
events as a customer (onboarding docs, newsletters).
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from stream_scorer.events import CONTACT_UPDATED
from stream_scorer.review.simulation.site import ASSETS, PAGES, SECTIONS, SITE, SOURCES, cumulative
from stream_scorer.review.simulation.timeline import DAY, HOUR, MIN, SEC, Timeline, poisson


@dataclass
class Actor:
    """What the drawing of one contact's behaviour needs to know about it."""

    cid: str
    tz: int
    first: int
    stop: int
    cold: int
    pages: list[float]
    activity: float
    intent: float
    sessions: int = 0


class Behaviour(Timeline):
    """The behaviours a contact's life is drawn from, each emitting its events."""

    def __init__(self, days: int, seed: int, start: datetime) -> None:
        super().__init__(days, seed, start)
        # One properties object per URL, shared by every visit of it.
        self.pages = tuple(tuple({"url": SITE + path} for path in PAGES[s]) for s in SECTIONS)

    def page_weights(self, intent: float, job_seeker: bool, competitor: bool) -> list[float]:
        """Cumulative weights of the site's sections for one contact's sessions."""
        weights = {
            "home": 3.0,
            "blog": 5.0,
            "docs": 2.0,
            "product": 2.0,
            "pricing": 0.25 * intent,
            "careers": 6.0 if job_seeker else 0.03,
            "customers": 0.5,
            "about": 0.5,
        }
        if competitor:
            weights.update(pricing=3.0, product=4.0, docs=4.0)
        return cumulative(weights)

    def session(self, s: Actor, t: int, cum_weights: list[float], hi: int) -> None:
        """A ``website_session`` and the pages seen in it, seconds to minutes apart."""
        rng = self.rng
        if not s.first <= t < hi:
            return
        s.sessions += 1
        rand = self.rand
        source = SOURCES[int(rand() * len(SOURCES))]
        self.emit(
            t, s.cid, "website_session", {"session_id": f"{s.cid}-s{s.sessions}", "source": source}
        )
        total = cum_weights[-1]
        for _ in range(1 + min(11, poisson(rng, 1.0))):
            t += 5 * SEC + int(rand() * (175 * SEC))
            if t >= hi:
                return
            options = self.pages[bisect_right(cum_weights, rand() * total)]
            self.emit(t, s.cid, "page_visit", options[int(rand() * len(options))])

    def _times(self, s: Actor, lo: int, hi: int, per_day: float) -> list[int]:
        """Poisson arrival times in ``[lo, hi)``, a tenth as many after the contact went cold."""
        out: list[int] = []
        for a, b, rate in ((lo, min(hi, s.cold), per_day), (max(lo, s.cold), hi, per_day / 10)):
            if b > a:
                out.extend(
                    self.uniform(a, b) for _ in range(poisson(self.rng, rate * (b - a) / DAY))
                )
        return out

    def browsing(self, s: Actor) -> None:
        """Bursts of visits: a few sessions within days of each other, weeks apart."""
        rng = self.rng
        rate = 0.007 * s.activity * s.intent**0.2
        for burst in self._times(s, s.first, s.stop, rate):
            for _ in range(1 + poisson(rng, 0.8)):
                t = burst + self.below(3 * DAY)
                self.session(s, self.at(t, s.first, s.stop, s.tz), s.pages, s.stop)

    def downloads(self, s: Actor, curiosity: float) -> None:
        """Gated content: students and job seekers collect it too, so it says little."""
        rate = 0.012 * s.activity * s.intent**0.15 * curiosity
        for t in self._times(s, s.first, s.stop, rate):
            t = self.at(t, s.first, s.stop, s.tz)
            self.emit(t, s.cid, "content_download", {"asset": self.rng.choice(ASSETS)})
        if self.rng.random() < min(0.3, 0.06 * s.intent**0.3):
            t = self.at(self.uniform(s.first, s.stop), s.first, s.stop, s.tz)
            self.emit(t, s.cid, "form_submit", {"form_id": "report-request"})

    def action(self, s: Actor, t: int, hi: int, type_: str, props: dict[str, Any]) -> None:
        """A high-intent action on the website: a short session on pricing or product first."""
        pages = cumulative({"product": 1.0, "pricing": 1.0, "customers": 0.3})
        self.session(s, t, pages, hi)
        self.emit(min(hi - 1, t + self.between(1, 6) * MIN), s.cid, type_, props)

    def tire_kicking(self, s: Actor) -> None:
        """Rare high-intent actions outside any buying journey, likelier with propensity."""
        rng = self.rng
        for type_, props, chance in (
            ("trial_signup", {"plan": "trial"}, 0.02),
            ("demo_request", {}, 0.01),
            ("form_submit", {"form_id": "consultation"}, 0.012),
            ("form_submit", {"form_id": "contact-us"}, 0.01),
        ):
            if rng.random() < min(0.5, chance * s.intent):
                t = self.at(self.uniform(s.first, s.stop), s.first, s.stop, s.tz)
                self.action(s, t, s.stop, type_, props)

    def webinar_visits(self, s: Actor, lo: int, hi: int, chance: float) -> None:
        for at, props in self.webinars:
            if lo <= at < hi:
                rate = chance if at < s.cold else chance / 5
                if self.rng.random() < rate:
                    self.emit(at + self.below(10 * MIN), s.cid, "webinar_attended", props)

    def emails(
        self, s: Actor, p: float, personal: bool, job_seeker: bool, competitor: bool
    ) -> None:
        """Every campaign after arrival: opens, clicks, replies, bounces and opt-outs.

        A bounced, unsubscribed or complaining address gets no more campaigns.
        """
        rng, cid = self.rng, s.cid
        open_rate = min(0.85, 0.2 * s.activity)
        scanner = not personal and rng.random() < 0.08
        click_rate = 0.12 * s.intent**0.15
        reply_rate = min(0.25, 0.004 * s.intent)
        optout = 0.003 / max(0.3, s.intent) ** 0.5
        bad_address = rng.random() < (0.03 if job_seeker or p < 0.03 else 0.008)
        first_mail = True
        for send, props in self.campaigns:
            if send < s.first:
                continue
            customer = send >= s.stop
            if first_mail and bad_address:
                self.emit(
                    send + self.between(5 * SEC, 2 * MIN), cid, "email_bounce", {"kind": "hard"}
                )
                return
            first_mail = False
            if rng.random() < 0.003:
                self.emit(
                    send + self.between(5 * SEC, 2 * MIN), cid, "email_bounce", {"kind": "soft"}
                )
                continue
            if scanner:
                t = send + self.between(1 * SEC, 5 * SEC)
                self.emit(t, cid, "email_open", props)
                for _ in range(self.between(1, 3)):
                    t += self.between(200, 3 * SEC)
                    self.emit(t, cid, "email_click", props)
            rate = open_rate if send < s.cold or customer else open_rate / 6
            if rng.random() >= rate:
                continue
            t = send + min(3 * DAY, int(rng.expovariate(1 / (4 * HOUR))))
            self.emit(t, cid, "email_open", props)
            if rng.random() < 0.2:
                self.emit(t + self.between(MIN, 2 * DAY), cid, "email_open", props)
            if rng.random() < click_rate:
                t += self.between(5 * SEC, MIN)
                self.emit(t, cid, "email_click", props)
                if rng.random() < 0.5:
                    self.session(s, t + 2 * SEC, s.pages, self.end)
            if rng.random() < (0.02 if customer else reply_rate):
                self.emit(t + self.between(2 * MIN, 3 * HOUR), cid, "email_reply", props)
            if competitor:
                continue
            if rng.random() < optout:
                self.emit(t + self.between(10 * SEC, MIN), cid, "unsubscribe", props)
                return
            if rng.random() < optout / 6:
                self.emit(t + self.between(10 * SEC, MIN), cid, "spam_complaint", props)
                return

    def journey(self, s: Actor, lo: int, hi: int, depth: float, budget: float) -> bool:
        """A buying journey in ``[lo, hi)``: research, pricing, a demo or trial, replies.

        A converter's journey ends at its conversion; others trail off (they bought
        elsewhere, or not at all). Returns whether the budget was confirmed.
        """
        rng, cid = self.rng, s.cid
        if hi <= lo:
            return False
        span = hi - lo
        pages = cumulative(
            {
                "pricing": 3.0,
                "product": 3.0,
                "docs": 2.0,
                "customers": 1.5,
                "blog": 1.0,
                "home": 1.0,
            }
        )

        def late(share: float) -> int:
            """A time in the journey, skewed towards its end."""
            return self.at(lo + int((span - 1) * (1 - share * rng.random() ** 1.5)), lo, hi, s.tz)

        for _ in range(1 + poisson(rng, 4.0 * depth)):
            self.session(s, late(1.0), pages, hi)
        for type_, props, chance in (
            ("demo_request", {}, 0.55),
            ("trial_signup", {"plan": "trial"}, 0.45),
            ("form_submit", {"form_id": "consultation"}, 0.3),
            ("form_submit", {"form_id": "contact-us"}, 0.2),
        ):
            if rng.random() < chance * depth:
                t = late(0.6)
                self.action(s, t, hi, type_, props)
        for _ in range(poisson(rng, 1.0 * depth)):
            t = late(0.8)
            self.emit(t, cid, "email_reply", {"campaign_id": "sales-outreach"})
        if rng.random() < 0.25:
            self.emit(late(1.0), cid, "content_download", {"asset": rng.choice(ASSETS)})
        self.webinar_visits(s, lo, hi, 0.45 * depth)
        if rng.random() < budget:
            t = late(0.5)
            if t < hi:
                self.emit(t, cid, CONTACT_UPDATED, {"budget_confirmed": True})
                return True
        return False

    def customer(self, s: Actor, since: int) -> None:
        """After converting: onboarding (docs, many sessions), then steady product use."""
        rng = self.rng
        docs = cumulative({"docs": 8.0, "home": 1.0, "blog": 1.0, "pricing": 0.3, "product": 1.0})
        for _ in range(2 + poisson(rng, 2.0)):
            t = since + self.between(HOUR, 21 * DAY)
            self.session(s, self.at(t, since, self.end, s.tz), docs, self.end)
        steady = Actor(s.cid, s.tz, since + SEC, self.end, self.end, docs, s.activity, 1.0)
        steady.sessions = s.sessions
        for t in self._times(steady, since + 21 * DAY, self.end, 0.03 * s.activity):
            self.session(steady, self.at(t, since, self.end, s.tz), docs, self.end)
        s.sessions = steady.sessions
        self.webinar_visits(steady, since, self.end, 0.06)
        for t in self._times(steady, since, self.end, 0.004):
            self.emit(t, s.cid, "content_download", {"asset": rng.choice(ASSETS)})
