"""Bad input of every kind ends in one line naming what is wrong, exit status 2 and no traceback.

The command runs in-process through ``coevo.cli.main``, the console entry point
with its error handling, so a case costs milliseconds unless it loads a model.
Each case builds its input in a fresh folder and returns the arguments.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import math
import os
from pathlib import Path

import pytest

from coevo import CoEvoConfig
from coevo.errors import CoevoError
from coevo.lock import RunLock


def cli(capsys, *args: str) -> tuple[int, str, str]:
    from coevo.cli import main

    try:
        main(list(args))
        code = 0
    except SystemExit as exit:
        code = exit.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def write(path: Path, content: str | bytes) -> str:
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return str(path)


def run_folder(tmp_path: Path, **damage: str) -> str:
    """A run folder as ``coevo run`` leaves it before its first step; ``damage`` replaces files' contents."""
    folder = tmp_path / "run"
    folder.mkdir()
    write(folder / "config.json", json.dumps(CoEvoConfig(n_clusters=2, method="kmeans").to_dict()))
    write(folder / "data.jsonl", '{"text": "card declined"}\n{"text": "lost my card"}\n{"text": "where is my parcel"}\n')
    write(folder / "state.json", '{"done": [], "adapter": null, "backoff": 0}')
    for name, content in damage.items():
        write(folder / name.replace("_", "."), content)
    return str(folder)


def inject(monkeypatch, error_number: int) -> None:
    """Every write of the atomic writer fails as the disk or the folder would make it fail."""
    import coevo.atomic

    def failing_mkstemp(dir, prefix, suffix):
        raise OSError(error_number, os.strerror(error_number), str(Path(dir) / f"{prefix}XXXX{suffix}"))

    monkeypatch.setattr(coevo.atomic.tempfile, "mkstemp", failing_mkstemp)


def full_disk_in_a_library(monkeypatch) -> None:
    """The cluster step fails as a library's own save does on a full disk: safetensors folds the
    operating system's error into its SafetensorError as "(os error 28)"."""
    from safetensors import SafetensorError

    from coevo.steps import Cluster

    def save_fails(self, ctx, r):
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(Cluster, "run", save_fails)


def held(tmp_path: Path, request) -> str:
    folder = run_folder(tmp_path)
    lock = RunLock(folder).__enter__()
    request.addfinalizer(lambda: lock.__exit__(None, None, None))
    return folder


SMALL = ["--sample", "12", "-q", "--show", "0"]
CASES = {
    # input files
    "empty file": (lambda t, m, r: ["baseline", write(t / "d.jsonl", ""), "-k", "2"], ["d.jsonl", "no texts"]),
    "broken JSON line": (lambda t, m, r: ["baseline", write(t / "d.jsonl", '{"text": "a"}\n{"text": "b",\n'), "-k", "2"],
                         ["d.jsonl", "line 2", "not valid JSON"]),
    "bad UTF-8": (lambda t, m, r: ["baseline", write(t / "d.txt", b"fine\nbad \xff byte\n"), "-k", "2"],
                  ["d.txt", "line 2", "UTF-8"]),
    "missing field": (lambda t, m, r: ["baseline", write(t / "d.jsonl", '{"text": "a"}\n{"body": "b"}\n'), "-k", "2"],
                      ["d.jsonl", "line 2", "'text'"]),
    "no such file": (lambda t, m, r: ["run", str(t / "nope.jsonl"), "-k", "2"], ["nope.jsonl", "not found"]),
    # options
    "wrong K": (lambda t, m, r: ["run", "demo", "-k", "1000"], ["-k/--clusters"]),
    "K of 1": (lambda t, m, r: ["run", "demo", "-k", "1"], ["-k/--clusters", "at least 2"]),
    "K neither a number nor auto": (lambda t, m, r: ["baseline", "demo", "-k", "many"], ["-k/--clusters", "'many'", "'auto'"]),
    "no K": (lambda t, m, r: ["run", "demo"], ["-k/--clusters"]),
    "unknown method": (lambda t, m, r: ["run", "demo", "-k", "5", "--method", "magic"], ["--method", "'magic'", "kmeans"]),
    "unknown task": (lambda t, m, r: ["run", "demo", "-k", "5", "--task", "mood"], ["--task", "'mood'", "emotion"]),
    "unknown density": (lambda t, m, r: ["run", "demo", "-k", "5", "--density", "magic"], ["--density", "posterior"]),
    "unknown represent": (lambda t, m, r: ["run", "demo", "-k", "5", "--represent", "all"], ["--represent", "text+interp"]),
    "unknown backend": (lambda t, m, r: ["run", "demo", "-k", "5", "--generation-backend", "tpu"],
                        ["--generation-backend", "vllm"]),
    "temperature nan": (lambda t, m, r: ["run", "demo", "-k", "5", "--temperature", "nan"], ["--temperature", "finite"]),
    "temperature inf": (lambda t, m, r: ["run", "demo", "-k", "5", "--temperature", "inf"], ["--temperature", "finite"]),
    "keep fraction nan": (lambda t, m, r: ["run", "demo", "-k", "5", "--keep-fraction", "nan"], ["--keep-fraction", "finite"]),
    "dpo beta -inf": (lambda t, m, r: ["run", "demo", "-k", "5", "--dpo-beta", "-inf"], ["--dpo-beta", "finite"]),
    "learning rate nan": (lambda t, m, r: ["run", "demo", "-k", "5", "--dpo-learning-rate", "nan"],
                          ["--dpo-learning-rate", "finite"]),
    "keep fraction 2": (lambda t, m, r: ["run", "demo", "-k", "5", "--keep-fraction", "2"], ["--keep-fraction"]),
    "not a number": (lambda t, m, r: ["run", "demo", "-k", "5", "--rounds", "three"], ["--rounds"]),
    "unknown option": (lambda t, m, r: ["run", "demo", "-k", "5", "--bogus"], ["--bogus"]),
    "show below 0": (lambda t, m, r: ["baseline", "demo", "-k", "5", "--show", "-1"], ["--show"]),
    "bench without config": (lambda t, m, r: ["bench"], ["CONFIG"]),
    "config file missing": (lambda t, m, r: ["run", "demo", "--config", str(t / "nope.json")], ["--config", "nope.json"]),
    "config file not JSON": (lambda t, m, r: ["run", "demo", "--config", write(t / "c.json", "{rounds: 2")],
                             ["--config", "c.json", "not valid JSON"]),
    "config file not TOML": (lambda t, m, r: ["run", "demo", "--config", write(t / "c.toml", "rounds = = 2")],
                             ["--config", "c.toml", "not valid TOML"]),
    "config file a list": (lambda t, m, r: ["run", "demo", "--config", write(t / "c.json", "[2]")],
                           ["--config", "object of settings"]),
    "config file unknown setting": (lambda t, m, r: ["run", "demo", "--config", write(t / "c.json", '{"n_clusters": 5, "roundz": 2}')],
                                    ["--config", "roundz", "known:"]),
    "config file wrong type": (lambda t, m, r: ["run", "demo", "--config", write(t / "c.json", '{"n_clusters": 5, "rounds": "two"}')],
                               ["--config", "wrong type"]),
    "config file without K": (lambda t, m, r: ["run", "demo", "--config", write(t / "c.toml", 'rounds = 2')],
                              ["-k/--clusters", "no n_clusters"]),
    "config file bad value": (lambda t, m, r: ["run", "demo", "--config", write(t / "c.toml", 'n_clusters = 5\nmethod = "magic"')],
                              ["--method", "'magic'"]),
    # models
    "unknown embedder": (lambda t, m, r: ["baseline", "demo", "-k", "5", "--embedder", "nobody/no-such-model-xyz",
                                          "-o", str(t / "out"), *SMALL], ["nobody/no-such-model-xyz"]),
    # run folders
    "existing run folder": (lambda t, m, r: ["run", "demo", "-k", "5", "-o", run_folder(t), *SMALL],
                            ["already holds a run", "--resume"]),
    "resume: no run folder": (lambda t, m, r: ["run", "--resume", str(t / "nothing")], ["--resume", "config.json"]),
    "resume: config.json empty": (lambda t, m, r: ["run", "--resume", run_folder(t, config_json="")],
                                  ["config.json", "empty", "start a new run"]),
    "resume: config.json cut short": (lambda t, m, r: ["run", "--resume", run_folder(t, config_json='{"n_clusters": 2, "ta')],
                                      ["config.json", "not valid JSON", "start a new run"]),
    "resume: config.json a list": (lambda t, m, r: ["run", "--resume", run_folder(t, config_json="[2]")],
                                   ["config.json", "array", "start a new run"]),
    "resume: config.json wrong type": (lambda t, m, r: ["run", "--resume", run_folder(t, config_json='{"n_clusters": 2, "rounds": "two"}')],
                                       ["config.json", "wrong type", "start a new run"]),
    "resume: config.json K neither a number nor auto": (
        lambda t, m, r: ["run", "--resume", run_folder(t, config_json='{"n_clusters": "two"}')],
        ["config.json", "-k/--clusters", "'two'", "'auto'", "start a new run"]),
    "resume: config.json unknown setting": (lambda t, m, r: ["run", "--resume", run_folder(t, config_json='{"n_clusters": 2, "x": 1}')],
                                            ["config.json", "unknown setting", "start a new run"]),
    "resume: config.json nan": (lambda t, m, r: ["run", "--resume", run_folder(t, config_json='{"n_clusters": 2, "tau": NaN}')],
                                ["config.json", "--tau", "finite"]),
    "resume: data.jsonl cut short": (lambda t, m, r: ["run", "--resume", run_folder(t, data_jsonl='{"text": "a"}\n{"text": "b')],
                                     ["data.jsonl", "line 2", "not valid JSON", "cannot be rebuilt"]),
    "resume: data.jsonl empty": (lambda t, m, r: ["run", "--resume", run_folder(t, data_jsonl="")],
                                 ["data.jsonl", "0 texts", "cannot be rebuilt"]),
    "resume: data.jsonl foreign": (lambda t, m, r: ["run", "--resume", run_folder(t, data_jsonl='{"a": 1}\n{"a": 2}\n')],
                                   ["data.jsonl", "row 1", "cannot be rebuilt"]),
    "resume: data.jsonl not UTF-8": (lambda t, m, r: ["run", "--resume", run_folder(t, data_jsonl=b'{"text": "\xff"}\n')],
                                     ["data.jsonl", "UTF-8"]),
    "resume: run folder in use": (lambda t, m, r: ["run", "--resume", held(t, r)],
                                  ["is in use by pid", str(os.getpid()), "started", "--resume"]),
    # the disk
    "no permission (injected)": (lambda t, m, r: (inject(m, errno.EACCES), ["run", "demo", "-k", "5", "-o", str(t / "out"), *SMALL])[1],
                                 ["out", "Permission denied", "-o"]),
    "disk full in a library's save (injected)": (
        lambda t, m, r: (full_disk_in_a_library(m), ["run", "demo", "-k", "5", "-o", str(t / "out"), *SMALL])[1],
        ["No space left on device", "finished steps are kept", "--resume"]),
    "disk full (injected)": (lambda t, m, r: (inject(m, errno.ENOSPC), ["run", "demo", "-k", "5", "-o", str(t / "out"), *SMALL])[1],
                             ["out", "No space left on device"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_and_exit_2(case, tmp_path, monkeypatch, request, capsys):
    setup, words = CASES[case]
    args = setup(tmp_path, monkeypatch, request)
    code, _, err = cli(capsys, *args)
    errors = [line for line in err.splitlines() if line.startswith("coevo: error:")]
    assert code == 2, err
    assert len(errors) == 1, err
    assert all(word in errors[0] for word in words), errors[0]
    assert "Traceback" not in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through any folder's permissions")
def test_unwritable_output_folder(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        code, _, err = cli(capsys, "run", "demo", "-k", "5", "-o", str(locked / "run"), *SMALL)
    finally:
        locked.chmod(0o700)
    assert code == 2 and "Permission denied" in err and "Traceback" not in err


def test_help_lists_the_allowed_values(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")  # the help table would wrap long lists of values
    code, out, _ = cli(capsys, "run", "--help")
    assert code == 0
    for values in ("intent|type|topic|emotion|domain", "kmeans|expand|contrastive-only|random-select|no-dpo|full",
                   "posterior|knn|kde", "text|text+interp", "auto|torch|vllm"):
        assert values in out, values


FLOATS = [f.name for f in dataclasses.fields(CoEvoConfig) if isinstance(getattr(CoEvoConfig(n_clusters=2), f.name), float)]


@pytest.mark.parametrize("name", FLOATS)
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_every_float_setting_refuses_nan_and_inf(name, value):
    with pytest.raises(CoevoError, match=f"option --{name.replace('_', '-')}: must be a finite number"):
        CoEvoConfig(n_clusters=2, **{name: value})
