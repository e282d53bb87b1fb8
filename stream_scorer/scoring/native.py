"""Which scoring modules run compiled (mypyc), and whether that build is current.

``setup.py`` compiles the engine's hot path when ``SCORER_MYPYC=1`` and
records the hashes of the sources it compiled. An extension module shadows
its ``.py`` file, so an edited source with an old build would run old code:
:func:`stale` names such modules (the test suite refuses to run with any).

:data:`MODULES` is the one list of compiled modules: ``setup.py`` and
``scripts/setup`` run this file as a script (``--sources``) to read it, which
is why it imports nothing but the standard library.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from importlib import resources
from pathlib import Path

#: The modules ``setup.py`` compiles: everything that runs for each event, compiled
#: together so that their calls to each other (private helpers included) are native.
MODULES = (
    "stream_scorer.scoring.state",
    "stream_scorer.scoring.tally",
    "stream_scorer.scoring.rules",
    "stream_scorer.scoring.attributes",
    "stream_scorer.scoring.crossings",
    "stream_scorer.scoring.tiers",
    "stream_scorer.scoring.engine",
    "stream_scorer.scoring.replay",
    "stream_scorer.scoring.explain",
    "stream_scorer.scoring.codec",
    "stream_scorer.scoring.model.compiled",
    "stream_scorer.scoring.model.conditions",
)


def sources() -> list[str]:
    """The source file of each compiled module, relative to the project root."""
    return [name.replace(".", "/") + ".py" for name in MODULES]


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


if __name__ == "__main__":
    import sys

    if sys.argv[1:] != ["--sources"]:
        sys.exit("usage: python stream_scorer/scoring/native.py --sources")
    print("\n".join(sources()))
