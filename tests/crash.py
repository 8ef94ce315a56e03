"""Kill -9 a run at every step and resume it: shared by the crash test and bench/reliability.py.

``COEVO_TEST_PAUSE_AT=roundR/step`` makes a run stop once that step's outputs are
written and before the step is recorded as done, the widest window a crash can hit:
the files are there, the state does not know them. Each kill point is reached by a
``--resume`` of the run the previous kill left, so one chain of processes covers
every step for about the cost of one run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from coevo.config import CoEvoConfig


def kill_points(config: CoEvoConfig) -> list[str]:
    """Every step the run makes, in order (the steps a method skips are not points; K's choice is ``auto_k``)."""
    from coevo.pipeline import CoEvolution
    from coevo.run_folder import step_key

    probe = CoEvolution(config, run_dir=None, progress=False)
    return [step_key(r, step) for r, step in probe._steps()]


@dataclass
class Kill:
    point: str
    paused: bool  # the process reached the point (False: it ended first, or timed out)
    recorded_before: list[str]  # steps state.json called done when the process was killed
    seconds: float


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "coevo.cli", *args]


def _done(run_dir: Path) -> list[str]:
    try:
        return json.loads((run_dir / "state.json").read_text())["done"]
    except (OSError, ValueError, KeyError):
        return []


def kill_at(command: list[str], point: str, run_dir: Path, timeout: float = 900) -> Kill:
    """Run ``command`` until it pauses at ``point``, then SIGKILL it (no cleanup of any kind runs)."""
    env = {**os.environ, "COEVO_TEST_PAUSE_AT": point, "PYTHONPATH": os.pathsep.join(sys.path)}
    started = time.perf_counter()
    child = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    paused = False
    try:
        deadline = started + timeout
        for line in child.stderr:
            if f"paused at {point}" in line:
                paused = True
                break
            if time.perf_counter() > deadline:
                break
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stderr.close()
    return Kill(point, paused, _done(run_dir), time.perf_counter() - started)


def crash_chain(run_args: list[str], run_dir: Path, points: list[str]) -> tuple[list[Kill], subprocess.CompletedProcess]:
    """Kill a fresh ``coevo run`` at the first point, each ``--resume`` at the next, then resume to the end."""
    kills = []
    for i, point in enumerate(points):
        command = _cli("run", *run_args, "-o", str(run_dir)) if i == 0 else _cli("run", "--resume", str(run_dir), "-q")
        kills.append(kill_at(command, point, run_dir))
    env = {k: v for k, v in os.environ.items() if k != "COEVO_TEST_PAUSE_AT"}
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    final = subprocess.run(_cli("run", "--resume", str(run_dir), "-q", "--show", "0"), capture_output=True, text=True,
                           env=env, timeout=1800)
    return kills, final
