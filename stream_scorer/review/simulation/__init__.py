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

:mod:`.timeline` holds the random draws and the calendar, :mod:`.population`
who the contacts are, :mod:`.site` the website, :mod:`.behaviour` what they
do, :mod:`.history` a whole history, :mod:`.files` the files written, and
:mod:`.live` the endless stream the demo plays.
"""

from stream_scorer.review.simulation.files import CONTACT_COLUMNS, Simulation, simulate
from stream_scorer.review.simulation.history import (
    DEFAULT_START,
    generate,
    generate_contacts,
)
from stream_scorer.review.simulation.live import live_events
from stream_scorer.review.simulation.population import SyntheticContact

__all__ = [
    "CONTACT_COLUMNS",
    "DEFAULT_START",
    "Simulation",
    "SyntheticContact",
    "generate",
    "generate_contacts",
    "live_events",
    "simulate",
]
