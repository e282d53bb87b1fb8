"""The live worker: events from Kafka, scored by the engine into Redis, alerts out.

:mod:`.app` wires the parts; its docstring shows how data flows through
them. The worker uses the pure core (:mod:`stream_scorer.scoring`) and the
wire format of events (:mod:`stream_scorer.events`), never the review or
dev packages.
"""
