"""Synthetic engagement histories with a hidden truth, for demos, tests and tuning.

A real history never says *why* a contact bought. Here every contact has a
hidden propensity ``p`` (the chance it converts within the simulated span),
drawn from a latent logit over some of its attributes plus noise, and every
behaviour is drawn at a rate that depends on ``p`` in its own way:

- strongly predictive: pricing page visits, webinar attendance, demo and
  trial requests, consultation requests, email replies; company size of 50
  or more and a target industry;
- weakly predictive: content downloads (which the default model rewards
  generously);
- noise that everyone produces: email opens (including mail scanners that
  open and click everything within seconds), generic page visits, sessions,
  newsletter signups; department and a manager title;
- negative: careers page visits (job seekers), personal email domains,
  unsubscribes, spam complaints and hard bounces (all rare).

So the default model (``config/scoring.yaml``) ranks contacts decently but
clearly imperfectly, and a model whose rule weights are fitted to the
conversions does better. A converter goes through a buying journey (sessions
heavy on pricing, a demo or trial, perhaps budget confirmed; a third of deals
are sales-led and leave little trace online) that ends in its conversion, then
keeps producing events as a customer (onboarding docs, newsletters): only a
point-in-time evaluation, scoring each contact with the events before the
moment it is judged at, is honest on this data.

Everything is drawn from one ``random.Random(seed)``: the same arguments give
byte-identical files.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import random
import sys
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stream_scorer.events import CONTACT_UPDATED
from stream_scorer.times import epoch_ms, format_ms

#: The start of a simulation when none is given, so that a seed alone fixes the output.
DEFAULT_START = datetime(2026, 1, 1, tzinfo=UTC)
SITE = "https://acme.example"

SEC = 1_000
MIN = 60 * SEC
HOUR = 60 * MIN
DAY = 24 * HOUR

#: Calibrates the latent logit so that about 11% of contacts convert.
_BASE_LOGIT = -3.7
#: Where intent multipliers are 1: behaviour rates scale with the logit around it.
_MID_LOGIT = -2.9

TARGET_INDUSTRIES = ("software", "saas", "fintech", "e-commerce")
OTHER_INDUSTRIES = (
    "retail",
    "manufacturing",
    "healthcare",
    "education",
    "government",
    "media",
    "logistics",
)
SERVICE_REGION = (
    ("US", 30, -6),
    ("GB", 8, 0),
    ("DE", 7, 1),
    ("CA", 5, -5),
    ("FR", 5, 1),
    ("NL", 3, 1),
    ("ES", 3, 1),
    ("IT", 3, 1),
    ("PL", 2, 1),
    ("SE", 2, 1),
    ("IE", 1, 0),
    ("DK", 1, 1),
    ("NO", 1, 1),
    ("FI", 1, 2),
    ("AT", 1, 1),
    ("CH", 1, 1),
    ("BE", 1, 1),
)
ELSEWHERE = (("IN", 5, 5), ("BR", 3, -3), ("AU", 3, 10), ("MX", 2, -6), ("JP", 1, 9), ("SG", 1, 8))
COMPANY_SIZES = (3, 8, 15, 30, 45, 60, 120, 250, 600, 1500, 5000, 20000)
COMPANY_SIZE_WEIGHTS = (6, 8, 9, 9, 6, 8, 9, 8, 6, 5, 3, 2)
COMPANY_NAMES = ("acme", "globex", "initech", "hooli", "vandelay", "umbrella", "stark", "tyrell")
PERSONAL_DOMAINS = ("gmail.com", "gmail.com", "yahoo.com", "hotmail.com", "outlook.com")
DEPARTMENTS = {
    "marketing": "Marketing",
    "sales": "Sales",
    "revenue operations": "Revenue Operations",
    "engineering": "Engineering",
    "finance": "Finance",
    "operations": "Operations",
    "it": "IT",
    "hr": "People",
}
DEPARTMENT_WEIGHTS = (20, 18, 8, 16, 9, 12, 10, 7)
TARGET_DEPARTMENTS = ("marketing", "sales", "revenue operations")
SENIORITIES = ("executive", "director", "manager", "individual")
SENIORITY_WEIGHTS = (8, 14, 30, 48)
TITLES = {
    "executive": (
        "VP {d}",
        "VP of {d}",
        "Vice President, {d}",
        "Chief Executive Officer",
        "Founder",
    ),
    "director": ("Director of {d}", "Head of {d}", "{d} Director"),
    "manager": ("{d} Manager", "Senior {d} Manager", "{d} Team Lead"),
    "individual": ("{d} Specialist", "{d} Analyst", "Senior {d} Associate", "{d} Coordinator"),
}
JOB_SEEKER_TITLES = ("Student", "Graduate Student", "Intern", "Software Engineer", "Data Analyst")

PAGES: dict[str, tuple[str, ...]] = {
    "home": ("/",),
    "blog": (
        "/blog/lead-scoring-101",
        "/blog/what-is-an-mql",
        "/blog/intent-data",
        "/blog/b2b-funnel-benchmarks",
        "/blog/email-deliverability",
        "/blog/score-decay",
        "/blog/sales-and-marketing-alignment",
    ),
    "docs": (
        "/docs/getting-started",
        "/docs/scoring-rules",
        "/docs/api",
        "/docs/webhooks",
        "/docs/integrations/salesforce",
        "/docs/integrations/hubspot",
    ),
    "product": ("/product", "/product/scoring", "/product/alerts", "/integrations"),
    "pricing": ("/pricing", "/pricing/enterprise", "/pricing?plan=team"),
    "careers": ("/careers", "/careers/software-engineer", "/careers/sales-development"),
    "customers": ("/customers", "/customers/case-study-fintech", "/customers/case-study-saas"),
    "about": ("/about", "/contact"),
}
SECTIONS = tuple(PAGES)
ASSETS = (
    "ebook-lead-scoring-guide",
    "whitepaper-intent-signals",
    "report-state-of-b2b-marketing",
    "template-scoring-model",
    "checklist-mql-handoff",
    "webinar-recording-scoring-at-scale",
)
SOURCES = ("organic", "organic", "direct", "email", "paid", "social", "referral")
#: Local hours people are online, weighted: mostly office hours, some evenings.
_HOUR_WEIGHTS = (0, 0, 0, 0, 0, 0, 1, 2, 4, 6, 7, 7, 5, 6, 7, 7, 6, 4, 3, 2, 2, 2, 1, 1)
_HOURS = tuple(h for h, w in enumerate(_HOUR_WEIGHTS) for _ in range(w))


@dataclass(frozen=True)
class Simulation:
    """What :func:`simulate` wrote, for the caller to report."""

    contacts: int
    days: int
    events: int
    conversions: int
    seed: int
    events_path: Path
    conversions_path: Path
    contacts_path: Path

    @property
    def paths(self) -> tuple[Path, Path, Path]:
        return (self.events_path, self.conversions_path, self.contacts_path)


@dataclass(frozen=True)
class SyntheticContact:
    """One contact's hidden truth: its propensity, conversion and final attributes."""

    contact_id: str
    propensity: float
    converted_at: int | None
    attributes: dict[str, Any] = field(default_factory=dict)


#: The columns of ``contacts.csv``.
CONTACT_COLUMNS = (
    "contact_id",
    "propensity",
    "converted_at",
    "email",
    "job_title",
    "seniority",
    "department",
    "company",
    "company_size",
    "industry",
    "country",
    "budget_confirmed",
    "is_competitor",
)

# An event before it is numbered: (epoch ms, sequence, contact, type, properties).
_Raw = tuple[int, int, str, str, dict[str, Any]]


@dataclass(frozen=True)
class _Company:
    name: str
    domain: str
    size: int
    industry: str
    country: str
    tz: int


@dataclass
class _History:
    events: list[_Raw]
    conversions: dict[str, int]
    contacts: list[SyntheticContact]


def _poisson(rng: random.Random, lam: float) -> int:
    """A Poisson count (Knuth's method; a normal approximation for large means)."""
    if lam <= 0:
        return 0
    if lam > 40:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit = math.exp(-lam)
    k = 0
    product = rng.random()
    while product > limit:
        k += 1
        product *= rng.random()
    return k


def _weekday(ms: int) -> int:
    """Monday is 0; 1970-01-01 was a Thursday."""
    return (ms // DAY + 3) % 7


class _Generator:
    """Draws one history: a global calendar of campaigns and webinars, then each contact."""

    def __init__(self, contacts: int, days: int, seed: int, start: datetime) -> None:
        if contacts < 0 or days < 1:
            raise ValueError("contacts must be >= 0 and days >= 1")
        if start.tzinfo is None:
            raise ValueError("start must carry a UTC offset")
        self.rng = random.Random(seed)
        self.rand = self.rng.random
        self.n_contacts = contacts
        self.days = days
        self.start = epoch_ms(start)
        self.end = self.start + days * DAY
        self.events: list[_Raw] = []
        self.seq = 0
        self.conversions: dict[str, int] = {}
        self.truth: list[SyntheticContact] = []
        # One properties object per URL, shared by every visit of it.
        self.pages = tuple(tuple({"url": SITE + path} for path in PAGES[s]) for s in SECTIONS)
        self.campaigns = self._campaigns()
        self.webinars = self._webinars()
        self.companies = self._companies(max(1, contacts // 3))

    # --- calendar ------------------------------------------------------------------

    def _campaigns(self) -> list[tuple[int, dict[str, Any]]]:
        """A newsletter or campaign most weeks, a second one some weeks; sent to everyone."""
        rng, out = self.rng, []
        week = self.start - (_weekday(self.start) * DAY) - self.start % DAY
        n = 0
        while week < self.end:
            for extra in (False, True):
                if extra and rng.random() > 0.25:
                    continue
                if not extra and rng.random() < 0.1:
                    continue  # a quiet week
                send = week + rng.choice((1, 2, 3)) * DAY + rng.choice((13, 14, 15)) * HOUR
                send += self.below(4) * 15 * MIN
                if self.start <= send < self.end:
                    n += 1
                    out.append((send, {"campaign_id": f"cmp-{n:03d}"}))
            week += 7 * DAY
        out.sort(key=lambda c: c[0])
        return out

    def _webinars(self) -> list[tuple[int, dict[str, Any]]]:
        out: list[tuple[int, dict[str, Any]]] = []
        t = self.start + self.between(7, 21) * DAY
        n = 0
        while t < self.end:
            day = t - t % DAY
            day += ((2 - _weekday(day)) % 7) * DAY  # Wednesdays
            at = day + 16 * HOUR
            if at < self.end:
                n += 1
                out.append((at, {"webinar_id": f"webinar-{n:02d}"}))
            t = day + self.between(14, 29) * DAY
        return out

    def _companies(self, n: int) -> list[_Company]:
        rng, out = self.rng, []
        regions = (*SERVICE_REGION, *ELSEWHERE)
        weights = [w for _, w, _ in regions]
        for i in range(n):
            name = f"{rng.choice(COMPANY_NAMES)}-{i}"
            country, _, tz = rng.choices(regions, weights)[0]
            industry = (
                rng.choice(TARGET_INDUSTRIES)
                if rng.random() < 0.45
                else rng.choice(OTHER_INDUSTRIES)
            )
            size = rng.choices(COMPANY_SIZES, COMPANY_SIZE_WEIGHTS)[0]
            out.append(_Company(name, f"{name}.com", size, industry, country, tz * HOUR))
        return out

    # --- emitting ------------------------------------------------------------------

    def emit(self, t: int, contact: str, type_: str, props: dict[str, Any]) -> None:
        """Record an event; one outside the simulated span is dropped, never clamped."""
        if self.start <= t < self.end:
            self.events.append((t, self.seq, contact, type_, props))
            self.seq += 1

    def at(self, t: int, lo: int, hi: int, tz: int) -> int:
        """``t`` moved to a plausible local hour of its day (weekends mostly to Monday).

        The result stays in ``[lo, hi)``: an event of a journey never lands after
        the conversion that ends it.
        """
        rng = self.rng
        local_day = (t + tz) // DAY
        weekday = (local_day + 3) % 7
        if weekday >= 5 and rng.random() < 0.75:
            local_day += 7 - weekday
        moved = local_day * DAY - tz + _HOURS[self.below(len(_HOURS))] * HOUR + self.below(HOUR)
        return moved if lo <= moved < hi else t

    def uniform(self, lo: int, hi: int) -> int:
        """A time in ``[lo, hi)``, or ``lo`` when that is empty."""
        return lo + int(self.rand() * max(1, hi - lo))

    def between(self, lo: int, hi: int) -> int:
        """``randrange(lo, hi)``, five times faster (this is most of the drawing)."""
        return lo + int(self.rand() * (hi - lo))

    def below(self, n: int) -> int:
        return int(self.rand() * n)

    # --- one contact ------------------------------------------------------------------

    def contact(self, i: int) -> None:
        """Attributes, hidden propensity, conversion and every behaviour of contact ``i``."""
        rng = self.rng
        cid = f"c-{i}"
        company = rng.choice(self.companies)
        competitor = rng.random() < 0.01
        job_seeker = not competitor and rng.random() < 0.06
        personal = rng.random() < (0.7 if job_seeker else 0.2)
        department = rng.choices(tuple(DEPARTMENTS), DEPARTMENT_WEIGHTS)[0]
        if job_seeker:
            seniority = "individual"
            title = rng.choice(JOB_SEEKER_TITLES)
        else:
            seniority = rng.choices(SENIORITIES, SENIORITY_WEIGHTS)[0]
            title = rng.choice(TITLES[seniority]).format(d=DEPARTMENTS[department])
        country, tz = company.country, company.tz
        if rng.random() < 0.08:
            country, _, offset = rng.choice((*SERVICE_REGION, *ELSEWHERE))
            tz = offset * HOUR
        size, industry = company.size, company.industry
        if competitor:
            size, industry = rng.choice((250, 600, 1500)), "saas"
        domain = rng.choice(PERSONAL_DOMAINS) if personal else company.domain
        attributes: dict[str, Any] = {
            "email": f"{cid}@{domain}",
            "job_title": title,
            "seniority": seniority,
            "department": department,
            "company": company.name,
            "company_size": size,
            "industry": industry,
            "country": country,
            "budget_confirmed": False,
            "is_competitor": competitor,
        }

        # The hidden truth: a latent logit over some attributes, plus noise.
        in_region = country in {c for c, _, _ in SERVICE_REGION}
        z = (
            _BASE_LOGIT
            + 1.6 * (size >= 50)
            + 0.3 * (size >= 1000)
            + 1.4 * (industry in TARGET_INDUSTRIES)
            + 0.2 * (seniority in ("executive", "director"))
            + 0.05 * (seniority == "manager")
            + 0.1 * (department in TARGET_DEPARTMENTS)
            - 1.4 * personal
            - 2.5 * job_seeker
            - 2.5 * (not in_region)
            + rng.gauss(0.0, 1.0)
        )
        if competitor:
            z = -6.5
        p = 1.0 / (1.0 + math.exp(-z))
        # How much more than a typical contact this one shows buying intent.
        intent = min(12.0, max(0.03, math.exp(0.9 * (z - _MID_LOGIT))))
        if competitor:
            intent = 4.0  # competitors study pricing and features; gates keep them out
        activity = math.exp(rng.gauss(0.0, 0.6))  # how online a person is: pure noise

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

        pages = self._page_weights(intent, job_seeker, competitor)
        s = _Contact(cid, tz, first, stop, cold, pages, activity, intent)

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

        self.truth.append(SyntheticContact(cid, p, converted_at, attributes))

    def _page_weights(self, intent: float, job_seeker: bool, competitor: bool) -> list[float]:
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
        return _cumulative(weights)

    def session(self, s: _Contact, t: int, cum_weights: list[float], hi: int) -> None:
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
        for _ in range(1 + min(11, _poisson(rng, 1.0))):
            t += 5 * SEC + int(rand() * (175 * SEC))
            if t >= hi:
                return
            options = self.pages[bisect_right(cum_weights, rand() * total)]
            self.emit(t, s.cid, "page_visit", options[int(rand() * len(options))])

    def _times(self, s: _Contact, lo: int, hi: int, per_day: float) -> list[int]:
        """Poisson arrival times in ``[lo, hi)``, a tenth as many after the contact went cold."""
        out: list[int] = []
        for a, b, rate in ((lo, min(hi, s.cold), per_day), (max(lo, s.cold), hi, per_day / 10)):
            if b > a:
                out.extend(
                    self.uniform(a, b) for _ in range(_poisson(self.rng, rate * (b - a) / DAY))
                )
        return out

    def browsing(self, s: _Contact) -> None:
        """Bursts of visits: a few sessions within days of each other, weeks apart."""
        rng = self.rng
        rate = 0.007 * s.activity * s.intent**0.2
        for burst in self._times(s, s.first, s.stop, rate):
            for _ in range(1 + _poisson(rng, 0.8)):
                t = burst + self.below(3 * DAY)
                self.session(s, self.at(t, s.first, s.stop, s.tz), s.pages, s.stop)

    def downloads(self, s: _Contact, curiosity: float) -> None:
        """Gated content: students and job seekers collect it too, so it says little."""
        rate = 0.012 * s.activity * s.intent**0.15 * curiosity
        for t in self._times(s, s.first, s.stop, rate):
            t = self.at(t, s.first, s.stop, s.tz)
            self.emit(t, s.cid, "content_download", {"asset": self.rng.choice(ASSETS)})
        if self.rng.random() < min(0.3, 0.06 * s.intent**0.3):
            t = self.at(self.uniform(s.first, s.stop), s.first, s.stop, s.tz)
            self.emit(t, s.cid, "form_submit", {"form_id": "report-request"})

    def action(self, s: _Contact, t: int, hi: int, type_: str, props: dict[str, Any]) -> None:
        """A high-intent action on the website: a short session on pricing or product first."""
        pages = _cumulative({"product": 1.0, "pricing": 1.0, "customers": 0.3})
        self.session(s, t, pages, hi)
        self.emit(min(hi - 1, t + self.between(1, 6) * MIN), s.cid, type_, props)

    def tire_kicking(self, s: _Contact) -> None:
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

    def webinar_visits(self, s: _Contact, lo: int, hi: int, chance: float) -> None:
        for at, props in self.webinars:
            if lo <= at < hi:
                rate = chance if at < s.cold else chance / 5
                if self.rng.random() < rate:
                    self.emit(at + self.below(10 * MIN), s.cid, "webinar_attended", props)

    def emails(
        self, s: _Contact, p: float, personal: bool, job_seeker: bool, competitor: bool
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

    def journey(self, s: _Contact, lo: int, hi: int, depth: float, budget: float) -> bool:
        """A buying journey in ``[lo, hi)``: research, pricing, a demo or trial, replies.

        A converter's journey ends at its conversion; others trail off (they bought
        elsewhere, or not at all). Returns whether the budget was confirmed.
        """
        rng, cid = self.rng, s.cid
        if hi <= lo:
            return False
        span = hi - lo
        pages = _cumulative(
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

        for _ in range(1 + _poisson(rng, 4.0 * depth)):
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
        for _ in range(_poisson(rng, 1.0 * depth)):
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

    def customer(self, s: _Contact, since: int) -> None:
        """After converting: onboarding (docs, many sessions), then steady product use."""
        rng = self.rng
        docs = _cumulative({"docs": 8.0, "home": 1.0, "blog": 1.0, "pricing": 0.3, "product": 1.0})
        for _ in range(2 + _poisson(rng, 2.0)):
            t = since + self.between(HOUR, 21 * DAY)
            self.session(s, self.at(t, since, self.end, s.tz), docs, self.end)
        steady = _Contact(s.cid, s.tz, since + SEC, self.end, self.end, docs, s.activity, 1.0)
        steady.sessions = s.sessions
        for t in self._times(steady, since + 21 * DAY, self.end, 0.03 * s.activity):
            self.session(steady, self.at(t, since, self.end, s.tz), docs, self.end)
        s.sessions = steady.sessions
        self.webinar_visits(steady, since, self.end, 0.06)
        for t in self._times(steady, since, self.end, 0.004):
            self.emit(t, s.cid, "content_download", {"asset": rng.choice(ASSETS)})

    def run(self) -> _History:
        for i in range(self.n_contacts):
            self.contact(i)
        self.events.sort()
        return _History(self.events, self.conversions, self.truth)


@dataclass
class _Contact:
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


def _cumulative(weights: dict[str, float]) -> list[float]:
    out, total = [], 0.0
    for section in SECTIONS:
        total += weights.get(section, 0.0)
        out.append(total)
    return out


def _history(contacts: int, days: int, seed: int, start: datetime | None) -> _History:
    return _Generator(contacts, days, seed, start or DEFAULT_START).run()


def generate(
    contacts: int, days: int, *, seed: int = 0, start: datetime | None = None
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Event documents in time order and conversions (contact id -> epoch ms), in memory.

    For tests and notebooks; :func:`simulate` writes the same history to files.
    """
    history = _history(contacts, days, seed, start)
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
    return _history(contacts, days, seed, start).contacts


def simulate(
    contacts: int, days: int, out: Path, *, seed: int = 0, start: datetime | None = None
) -> Simulation:
    """Write ``events.jsonl``, ``conversions.csv`` and ``contacts.csv`` into ``out``.

    ``events.jsonl`` is what a producer would send, in time order;
    ``conversions.csv`` is the outcome that backtests and tuning read;
    ``contacts.csv`` is the hidden truth (propensity, conversion, final
    attributes) for checking what a model learned.
    """
    history = _history(contacts, days, seed, start)
    out.mkdir(parents=True, exist_ok=True)
    events_path = out / "events.jsonl"
    conversions_path = out / "conversions.csv"
    contacts_path = out / "contacts.csv"
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    # Ids and types are this module's own plain strings; properties objects are often
    # shared (one per URL, one per campaign), so each is encoded once.
    encoded: dict[int, str] = {}
    with events_path.open("w", encoding="utf-8", newline="\n") as handle:
        for n, (t, _, contact, type_, props) in enumerate(history.events):
            body = encoded.get(id(props))
            if body is None:
                body = encoded[id(props)] = dumps(props)
            handle.write(
                f'{{"event_id":"sim{seed}-{n:08d}","contact_id":"{contact}","type":"{type_}",'
                f'"occurred_at":"{format_ms(t)}","properties":{body}}}\n'
            )
    with conversions_path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(("contact_id", "converted_at"))
        for contact, at in sorted(history.conversions.items(), key=lambda c: (c[1], c[0])):
            writer.writerow((contact, format_ms(at)))
    with contacts_path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(CONTACT_COLUMNS)
        for truth in history.contacts:
            attrs = truth.attributes
            converted = "" if truth.converted_at is None else format_ms(truth.converted_at)
            writer.writerow(
                (
                    truth.contact_id,
                    f"{truth.propensity:.6f}",
                    converted,
                    *(_cell(attrs.get(column)) for column in CONTACT_COLUMNS[3:]),
                )
            )
    return Simulation(
        contacts=contacts,
        days=days,
        events=len(history.events),
        conversions=len(history.conversions),
        seed=seed,
        events_path=events_path,
        conversions_path=conversions_path,
        contacts_path=contacts_path,
    )


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m stream_scorer.review.simulate OUT``: write a synthetic history to a folder."""
    parser = argparse.ArgumentParser(
        prog="python -m stream_scorer.review.simulate",
        description="Write a synthetic engagement history with its hidden truth.",
    )
    parser.add_argument("out", type=Path, help="folder for the three files")
    parser.add_argument("--contacts", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    result = simulate(args.contacts, args.days, args.out, seed=args.seed)
    print(
        f"{result.events} events, {result.conversions} conversions of {result.contacts} "
        f"contacts over {result.days} days (seed {result.seed}) in {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
