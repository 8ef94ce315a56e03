"""Run folders that were damaged, filled a disk, or are wanted by two processes at once.

A damaged file gives one line naming it, or, where the step that wrote it can
be redone, is redone; a full disk keeps the finished steps; a second writer is
turned away with the first one's pid, and the lock of a killed run is taken over.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import coevo.atomic
from coevo import CoEvoConfig, CoEvolution
from coevo.atomic import DamagedFile, atomic_write_json, read_json, read_jsonl, write_problem
from coevo.errors import CoevoError
from coevo.lock import HOLDER_NAME, RunLock
from tests.conftest import TEST_LLM
from tests.test_bad_input import cli

# ------------------------------------------------------------------ reading and writing one file


@pytest.mark.parametrize("content, kind, problem", [
    ("", dict, "empty"),
    ('{"done": ["round1/gen', dict, "not valid JSON"),
    ("[1, 2]", dict, "array where a JSON object belongs"),
    ('{"a": 1}', list, "object where a JSON array belongs"),
    (b"\xff\xfe", dict, "not UTF-8"),
])
def test_read_json_names_the_file_and_the_damage(tmp_path, content, kind, problem):
    path = tmp_path / "state.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(DamagedFile) as info:
        read_json(path, kind)
    assert str(path) in str(info.value) and problem in str(info.value)
    assert isinstance(info.value, ValueError)  # callers that treat unreadable JSON as absent keep working


def test_read_jsonl_names_the_line(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"a": 1}\n{"a": "x\u2028y"}\n[3]\n', encoding="utf-8")
    with pytest.raises(DamagedFile, match="line 3 holds a JSON array"):
        read_jsonl(path)
    path.write_text('{"a": 1}\n{"a": "x\u2028y"}\n', encoding="utf-8")  # U+2028 inside a text is no line break
    assert read_jsonl(path) == [{"a": 1}, {"a": "x\u2028y"}]


def test_a_full_disk_leaves_the_old_file_and_no_temporary_one(tmp_path, monkeypatch):
    path = tmp_path / "state.json"
    atomic_write_json(path, {"done": ["round1/generate"]})

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(coevo.atomic.os, "fsync", full)
    with pytest.raises(OSError) as info:
        atomic_write_json(path, {"done": ["round1/generate", "round1/cluster"]})
    monkeypatch.undo()
    assert info.value.filename == str(path)  # the file the user knows, not the temporary sibling
    assert write_problem(info.value) == f"{path}: No space left on device"
    assert read_json(path) == {"done": ["round1/generate"]}
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


# ------------------------------------------------------------------ a finished run, damaged


@pytest.fixture(scope="module")
def texts(demo_corpus):
    return demo_corpus.texts[:12], demo_corpus.labels[:12]


CONFIG = dict(n_clusters=3, method="expand", llm=TEST_LLM, samples=2, max_new_tokens=8, kmeans_init=2)


@pytest.fixture(scope="module")
def expand_run(tmp_path_factory, texts) -> Path:
    folder = tmp_path_factory.mktemp("expand") / "run"
    CoEvolution(CoEvoConfig(**CONFIG), run_dir=folder, progress=False).fit(*texts)
    return folder


def test_a_run_folder_says_what_code_ran_each_step(expand_run):
    """A result read back long after (by the bench, or a person) keeps its provenance."""
    from coevo.provenance import code_version

    state, summary = read_json(expand_run / "state.json"), read_json(expand_run / "summary.json")
    assert set(state["code_by_step"]) == set(state["done"]) and set(state["code_by_step"].values()) == {code_version()}
    assert summary["code"] == [code_version()] and code_version() not in ("", "unknown")


def copy_of(run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run, tmp_path / "run"))


def clusters(folder: Path) -> list[int]:
    return [row["cluster"] for row in read_jsonl(folder / "assignments.jsonl")]


@pytest.mark.slow
@pytest.mark.parametrize("content", ["", '{"done": ["round1/generate", "rou', "[]", '{"done": "all"}'])
def test_a_damaged_state_is_rebuilt_from_the_step_records(expand_run, tmp_path, capsys, content):
    folder = copy_of(expand_run, tmp_path)
    (folder / "state.json").write_text(content)
    code, _, err = cli(capsys, "run", "--resume", str(folder), "-q", "--show", "0")
    assert code == 0, err
    assert "state.json" in err and "rebuilt it from the step records, continuing after round1/cluster" in err
    assert read_json(folder / "state.json")["done"] == ["round1/generate", "round1/cluster"]
    assert clusters(folder) == clusters(expand_run)


@pytest.mark.slow
@pytest.mark.parametrize("damage, redone", [
    (("round1/interpretations.jsonl", '{"index": 0, "interpretations": ["card'), "round1/generate"),
    (("round1/interpretations.jsonl", '{"index": 0, "interpretations": []}\n'), "round1/generate"),  # rows missing
    (("round1/cluster.json", ""), "round1/cluster"),
    (("round1/assignments.jsonl", '{"text": "a"}\n'), "round1/cluster"),
])
def test_a_damaged_step_is_redone_with_the_steps_after_it(expand_run, tmp_path, capsys, damage, redone):
    folder = copy_of(expand_run, tmp_path)
    name, content = damage
    (folder / name).write_text(content)
    code, _, err = cli(capsys, "run", "--resume", str(folder), "-q", "--show", "0")
    assert code == 0, err
    assert f"warning: {folder / name}" in err and f"redoing {redone}" in err
    assert clusters(folder) == clusters(expand_run)
    assert not list(folder.rglob("*.tmp"))


@pytest.mark.slow
def test_load_names_a_damaged_summary_and_resume_rebuilds_it(expand_run, tmp_path):
    folder = copy_of(expand_run, tmp_path)
    (folder / "summary.json").write_text('{"clusters": [')
    with pytest.raises(CoevoError, match=r"summary.json: not valid JSON.*coevo run --resume"):
        CoEvolution.load(folder)
    CoEvolution.resume(folder, progress=False)
    assert CoEvolution.load(folder).labels_.tolist() == clusters(expand_run)


@pytest.mark.slow
def test_a_full_disk_mid_run_keeps_the_finished_steps(expand_run, tmp_path, texts, monkeypatch):
    real = coevo.atomic.atomic_write_bytes

    def full_at_cluster(path, data):
        if Path(path).name == "cluster.json":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real(path, data)

    monkeypatch.setattr(coevo.atomic, "atomic_write_bytes", full_at_cluster)
    with pytest.raises(CoevoError, match=r"cluster.json: No space left on device; the finished steps are kept; "
                                         r"free some space, then continue with: coevo run --resume"):
        CoEvolution(CoEvoConfig(**CONFIG), run_dir=tmp_path / "run", progress=False).fit(*texts)
    monkeypatch.undo()
    assert read_json(tmp_path / "run" / "state.json")["done"] == ["round1/generate"]
    assert not (tmp_path / "run" / HOLDER_NAME).exists()  # the lock was let go
    model = CoEvolution.resume(tmp_path / "run", progress=False)
    assert model.labels_.tolist() == clusters(expand_run)


# ------------------------------------------------------------------ one writer per run folder


def test_a_second_writer_is_told_who_holds_the_folder(tmp_path):
    with RunLock(tmp_path):
        holder = json.loads((tmp_path / HOLDER_NAME).read_text())
        assert holder["pid"] == os.getpid() and holder["host"] and holder["started"]
        with pytest.raises(CoevoError, match=rf"in use by pid {os.getpid()} on .*, started "):
            RunLock(tmp_path).__enter__()
    assert not (tmp_path / HOLDER_NAME).exists()
    with RunLock(tmp_path):  # free again once let go
        pass


def test_the_lock_of_a_dead_process_is_taken_over(tmp_path):
    import socket

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / ".coevo.lock").touch()
    (tmp_path / HOLDER_NAME).write_text(json.dumps({"pid": int(dead.stdout), "host": socket.gethostname(), "started": "x"}))
    said = []
    with RunLock(tmp_path, log=said.append):
        assert json.loads((tmp_path / HOLDER_NAME).read_text())["pid"] == os.getpid()
    assert len(said) == 1 and f"pid {int(dead.stdout)}" in said[0] and "no longer running" in said[0]


@pytest.mark.slow
def test_a_paused_run_holds_its_folder_and_after_kill_9_the_next_resume_takes_over(tmp_path, texts, capsys):
    data = tmp_path / "texts.jsonl"
    data.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts[0]))
    folder = tmp_path / "run"
    env = {**os.environ, "COEVO_TEST_PAUSE_AT": "round1/cluster", "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.Popen([sys.executable, "-m", "coevo.cli", "run", str(data), "-k", "3", "--method", "kmeans",
                              "--kmeans-init", "2", "-o", str(folder), "-q", "--show", "0"],
                             stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    try:
        for line in child.stderr:
            if "paused at round1/cluster" in line:
                break
        else:
            pytest.fail(f"the run ended without pausing (status {child.wait()})")
        code, _, err = cli(capsys, "run", "--resume", str(folder), "-q")
        assert code == 2 and f"in use by pid {child.pid}" in err, err
    finally:
        child.kill()  # SIGKILL: no cleanup runs, the note of who held the lock stays
        child.wait()
    assert (folder / HOLDER_NAME).exists()
    code, _, err = cli(capsys, "run", "--resume", str(folder), "-q", "--show", "0")
    assert code == 0, err
    assert f"left locked by pid {child.pid}" in err and "no longer running" in err
    assert read_json(folder / "state.json")["done"] == ["round1/cluster"]
    assert len(clusters(folder)) == 12
