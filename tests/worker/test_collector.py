"""The worker's cycle-collector settings (see stream_scorer/worker/collector.py)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from stream_scorer.worker import collector


@pytest.fixture
def restored_collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("restored_collector")
def test_tune_freezes_the_start_up_heap_and_raises_the_thresholds() -> None:
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)
    collector.tune()
    assert gc.isenabled()  # cyclic garbage is still collected, less often
    assert gc.get_threshold() == collector.THRESHOLDS
    assert gc.get_freeze_count() > 10_000  # the modules and objects imported so far
