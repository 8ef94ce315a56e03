"""kill -9 at every step of a two-round `full` run, resume after each kill: the run ends with the
same bytes as a run that was never interrupted (the shared ``full_run``, same settings)."""

from __future__ import annotations

import json

import pytest

from coevo.config import CoEvoConfig
from tests.conftest import SMALL
from tests.crash import crash_chain, kill_points


@pytest.mark.slow
def test_kill_9_at_every_step_then_resume_gives_the_uninterrupted_result(full_run, tmp_path):
    config = CoEvoConfig.from_dict(json.loads((full_run / "config.json").read_text()))
    points = kill_points(config)
    assert points == ["round1/generate", "round1/select", "round1/dpo", "round1/contrastive", "round1/cluster",
                      "round2/generate", "round2/select", "round2/contrastive", "round2/cluster"]
    run_dir = tmp_path / "run"
    kills, final = crash_chain(["demo", *SMALL], run_dir, points)
    for i, kill in enumerate(kills):
        assert kill.paused, f"the run never reached {kill.point}"
        assert kill.recorded_before == points[:i], f"killed at {kill.point}: state says {kill.recorded_before}"
    assert final.returncode == 0, final.stderr[-3000:]
    assert "left locked by pid" in final.stderr  # the last kill's lock, taken over
    for name in ("assignments.jsonl", "round1/interpretations.jsonl", "round2/interpretations.jsonl",
                 "round1/pairs.jsonl", "round2/pairs.jsonl"):
        assert (run_dir / name).read_bytes() == (full_run / name).read_bytes(), name
