"""Build hook: compile the scoring hot path with mypyc when ``SCORER_MYPYC=1``.

The engine is plain, strictly typed Python; compiled by mypyc (from the
mypy project, as black and mypy ship themselves) it runs about 1.5-2x
faster. Without the variable, or if compilation fails, the package is pure
Python and behaves the same. ``scripts/setup`` builds it compiled.
A record of the compiled sources' hashes lets ``stream_scorer.scoring.native``
tell a stale build (sources edited since) from a current one.
"""

from __future__ import annotations

import hashlib
import json
import os
import runpy
from pathlib import Path
from typing import Any

from setuptools import setup

#: The sources to compile, listed once: ``MODULES`` in stream_scorer/scoring/native.py
#: (run as a file: it imports only the standard library, so the package need not be importable).
NATIVE: list[str] = runpy.run_path("stream_scorer/scoring/native.py")["sources"]()
RECORD = Path("stream_scorer/_native.json")


def native_modules() -> list[Any]:
    if os.environ.get("SCORER_MYPYC") != "1":
        return []
    from mypyc.build import mypycify

    modules = mypycify(NATIVE, opt_level="3")
    RECORD.write_text(
        json.dumps(
            {path: hashlib.sha256(Path(path).read_bytes()).hexdigest() for path in NATIVE},
            indent=1,
        )
    )
    return list(modules)


setup(ext_modules=native_modules())
