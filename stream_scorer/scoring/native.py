"""Which scoring modules run compiled (mypyc), and whether that build is current.

``setup.py`` compiles the engine's hot path when ``SCORER_MYPYC=1`` and
records the hashes of the sources it compiled. An extension module shadows
its ``.py`` file, so an edited source with an old build would run old code:
:func:`stale` names such modules (the test suite refuses to run with any).
"""

from __future__ import annotations

import hashlib
import importlib
import json
from importlib import resources
from pathlib import Path

#: The modules ``setup.py`` compiles.
MODULES = (
    "stream_scorer.scoring.engine",
    "stream_scorer.scoring.model.compiled",
    "stream_scorer.scoring.model.conditions",
)


def compiled() -> dict[str, bool]:
    """Each native-capable module and whether the running one is an extension module."""
    out = {}
    for name in MODULES:
        path = importlib.import_module(name).__file__ or ""
        out[name] = not path.endswith(".py")
    return out


def stale() -> list[str]:
    """Compiled modules whose source changed after they were built."""
    record_file = resources.files("stream_scorer").joinpath("_native.json")
    try:
        record: dict[str, str] = json.loads(record_file.read_text())
    except (FileNotFoundError, ValueError):
        record = {}
    root = Path(str(resources.files("stream_scorer"))).parent
    out = []
    for name, is_compiled in compiled().items():
        if not is_compiled:
            continue
        source = name.replace(".", "/") + ".py"
        path = root / source
        if not path.exists():
            continue  # an installed wheel ships no sources to compare
        if record.get(source) != hashlib.sha256(path.read_bytes()).hexdigest():
            out.append(name)
    return out


def describe() -> str:
    """One line for benchmarks and ``--version``: compiled, pure or mixed."""
    state = compiled()
    if all(state.values()):
        return "compiled (mypyc)" + (" STALE" if stale() else "")
    if not any(state.values()):
        return "pure Python"
    return "mixed: " + ", ".join(
        f"{k.rsplit('.', 1)[1]}={'c' if v else 'py'}" for k, v in state.items()
    )
