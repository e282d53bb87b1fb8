"""The README's first command: alerts within 60 s, Ctrl-C leaves no process behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from queue import Empty, Queue

import pytest

pytestmark = pytest.mark.integration


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def test_demo_prints_alerts_then_stops_cleanly_on_ctrl_c() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "stream_scorer", "demo", "--contacts", "100", "--rate", "300"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        start_new_session=True,
    )
    lines: Queue[str] = Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout or []], daemon=True).start()
    seen: list[str] = []
    pids: dict[str, int] = {}
    alert_line = None
    services_up_at = None
    try:
        deadline = time.monotonic() + 240
        while alert_line is None and time.monotonic() < deadline:
            try:
                line = lines.get(timeout=1)
            except Empty:
                assert proc.poll() is None, "demo exited early:\n" + "".join(seen)
                continue
            seen.append(line)
            if line.startswith("pids:"):
                pids = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}
                services_up_at = time.monotonic()
            if "sales-ready" in line:
                alert_line = line
        assert services_up_at is not None, "".join(seen)
        assert alert_line is not None, "no alert:\n" + "".join(seen)
        assert time.monotonic() - services_up_at < 60, "first alert took over 60 s"
        assert re.search(r"▲ MQL\s+sales-ready\s+c-\d+\s+engagement \d+ \(was \d+", alert_line)
        assert set(pids) == {"kafka", "redis", "worker"}
        assert all(_alive(pid) for pid in pids.values())

        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        code = proc.wait(timeout=90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    time.sleep(0.5)
    output = "".join(seen) + "".join(lines.queue)
    assert code == 0, output
    assert "stopped: worker, Kafka and Redis are down." in output
    assert [name for name, pid in pids.items() if _alive(pid)] == []
