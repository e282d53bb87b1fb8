"""Python's cycle collector, set for a process whose heap is mostly long-lived states.

A worker keeps its contacts' states in memory (the store's working set):
hundreds of thousands of small, long-lived objects. With CPython's default
thresholds (700, 10, 10) every full collection walks all of them; measured
on the pipeline benchmark (100,000 events, 20,000 contacts), 14 full
collections took 2.7 s of a 6 s run, up to 190 ms each, and each stalled
the event loop, so they showed as throughput lost and as the p99 of
event-to-alert latency. The engine makes no reference cycles of its own, so
young collections free what little cyclic garbage there is (asyncio's, an
exception's traceback), and a full one is rarely worth its cost.
"""

from __future__ import annotations

import gc

__all__ = ["THRESHOLDS", "tune"]

#: Objects allocated (less freed) before a young collection, then young
#: collections before a middle one, then middle ones before a full one
#: (which CPython also holds back until the long-lived objects grew by 25%).
THRESHOLDS = (20_000, 20, 100)


def tune() -> None:
    """Freeze what start-up made (modules, the model, the app) and set :data:`THRESHOLDS`.

    Frozen objects are never walked again by any collection. Call once the
    process is set up, before it reads events.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
