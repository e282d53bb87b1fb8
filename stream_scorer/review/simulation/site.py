"""The simulated vendor's website and content: what contacts visit, download, come from."""

from __future__ import annotations

SITE = "https://acme.example"

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


def cumulative(weights: dict[str, float]) -> list[float]:
    """Cumulative weights of the site's sections, in :data:`SECTIONS` order, for bisection."""
    out, total = [], 0.0
    for section in SECTIONS:
        total += weights.get(section, 0.0)
        out.append(total)
    return out
