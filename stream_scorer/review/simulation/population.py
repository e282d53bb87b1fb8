"""Who the contacts are: companies, people, and each one's hidden propensity to buy.

A contact's propensity ``p`` (the chance it converts within the simulated
span) comes from a latent logit over some of its attributes plus noise:
company size of 50 or more and a target industry predict strongly; seniority
and department a little; personal e-mail domains, job seekers and contacts
outside the service region predict against. Competitors never buy. The
same logit sets the contact's *intent*: how much more than a typical contact
it shows buying intent, which scales its behaviour.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

from stream_scorer.review.simulation.timeline import HOUR

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


@dataclass(frozen=True)
class SyntheticContact:
    """One contact's hidden truth: its propensity, conversion and final attributes."""

    contact_id: str
    propensity: float
    converted_at: int | None
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Company:
    name: str
    domain: str
    size: int
    industry: str
    country: str
    tz: int


def draw_companies(rng: random.Random, n: int) -> list[Company]:
    out = []
    regions = (*SERVICE_REGION, *ELSEWHERE)
    weights = [w for _, w, _ in regions]
    for i in range(n):
        name = f"{rng.choice(COMPANY_NAMES)}-{i}"
        country, _, tz = rng.choices(regions, weights)[0]
        industry = (
            rng.choice(TARGET_INDUSTRIES) if rng.random() < 0.45 else rng.choice(OTHER_INDUSTRIES)
        )
        size = rng.choices(COMPANY_SIZES, COMPANY_SIZE_WEIGHTS)[0]
        out.append(Company(name, f"{name}.com", size, industry, country, tz * HOUR))
    return out


@dataclass
class Person:
    """Who a contact is, drawn once: its attributes, its hidden truth, how it behaves."""

    cid: str
    #: The current attributes: a promotion or a confirmed budget changes them.
    attributes: dict[str, Any]
    seniority: str
    department: str
    tz: int
    competitor: bool
    job_seeker: bool
    personal: bool
    propensity: float
    #: How much more than a typical contact this one shows buying intent.
    intent: float
    #: How online a person is: pure noise.
    activity: float


def draw_person(rng: random.Random, cid: str, companies: list[Company]) -> Person:
    """The attributes and hidden propensity of contact ``cid``, at one of ``companies``."""
    company = rng.choice(companies)
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
    return Person(
        cid,
        attributes,
        seniority,
        department,
        tz,
        competitor,
        job_seeker,
        personal,
        p,
        intent,
        activity,
    )
