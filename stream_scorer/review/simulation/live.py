"""A live stream of simulated behaviour, for the demo: the same people, events stamped now.

The demo shows alerts as they happen, so it needs events of the present: the
events of a simulated history in their order, each stamped with the clock
when it is taken, so the stream goes as fast as its consumer takes it and a
simulated week may pass in seconds. It does not end: when one stretch of
``days`` has been played, the same people live the next.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

from stream_scorer.review.simulation.history import Generator
from stream_scorer.review.simulation.population import Person
from stream_scorer.times import format_ms, from_epoch_ms, now_ms


def live_events(
    contacts: int,
    *,
    seed: int = 0,
    days: int = 30,
    clock: Callable[[], int] = now_ms,
) -> Iterator[dict[str, Any]]:
    """Event documents of ``contacts`` contacts without end, ``occurred_at`` the clock's now.

    ``clock`` gives epoch ms. Stretch ``k`` is drawn with seed ``seed + k``;
    the people are drawn in the first and keep their attributes after it.
    """
    if contacts < 1:
        raise ValueError("a live stream needs at least one contact")
    people: list[Person] | None = None
    for stretch in itertools.count():
        generator = Generator(contacts, days, seed + stretch, from_epoch_ms(clock()), people)
        history = generator.run()
        people = generator.people
        for n, (_, _, contact, type_, props) in enumerate(history.events):
            yield {
                "event_id": f"live{seed}-{stretch}-{n:08d}",
                "contact_id": contact,
                "type": type_,
                "occurred_at": format_ms(clock()),
                "properties": dict(props),
            }
