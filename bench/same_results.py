"""Does a change of shape change results? The demo and the smoke tier at two commits, compared.

    python bench/same_results.py --before 536174d --after HEAD     # -> docs/results/same-results.{json,md}
    python bench/same_results.py --before A --after B --skip-smoke  # the demo only

Each commit is checked out in a git worktree of its own (under --work), and runs there with
this checkout's virtual environment and the worktree's ``src`` first on the path:

- the demo exactly as ``scripts/demo.sh`` runs it (``coevo run demo -k 10 --task intent
  --rounds 2 --max-pairs 16``, seed 0), compared byte for byte: ``assignments.jsonl`` and every
  round's ``interpretations.jsonl``;
- the smoke tier (``bench/configs/smoke.toml``), compared record by record (ACC/NMI/ARI).

Each commit gets an empty generation cache (``$COEVO_CACHE`` with the packaged models linked
in), so the second commit decodes its interpretations itself instead of reading the first's.
Runs share the machine with whatever else runs; their seconds say so, their bytes do not care.
A part that finished (``<part>.seconds`` beside its outputs) is not run again when the script is.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from coevo.bench.results import data_dir, repo_root, results_dir, stamp, today, write_results
from coevo.models import cache_root

DEMO = ["demo", "-k", "10", "--task", "intent", "--rounds", "2", "--max-pairs", "16"]


def worktree(rev: str, work: Path) -> tuple[Path, str]:
    commit = subprocess.run(["git", "rev-parse", "--short", rev], cwd=repo_root(), capture_output=True, text=True,
                            check=True).stdout.strip()
    path = work / f"tree-{commit}"
    if not path.is_dir():
        subprocess.run(["git", "worktree", "add", "--detach", str(path), commit], cwd=repo_root(), check=True,
                       capture_output=True)
    return path, commit


def fresh_cache(cache: Path) -> None:
    """An empty generation cache beside the models already assembled (they are sha256-checked anyway)."""
    shutil.rmtree(cache, ignore_errors=True)
    (cache / "generations").mkdir(parents=True)
    (cache / "models").symlink_to(cache_root() / "models")


def call(args: list[str], tree: Path, cache: Path, log: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree / "src"), "COEVO_CACHE": str(cache), "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    started = time.perf_counter()
    with open(log, "ab") as out:
        rc = subprocess.run([sys.executable, "-m", "coevo.cli", *args], cwd=tree, env=env, stdout=out, stderr=out).returncode
    if rc != 0:
        raise SystemExit(f"same_results: `coevo {' '.join(args)}` failed in {tree} (exit {rc}); see {log}")
    return time.perf_counter() - started


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def timed(out: Path, name: str, args: list[str], tree: Path, cache: Path, log: Path) -> float:
    """Run once: a finished part (its seconds recorded) is not run again when the script is re-run."""
    done = out / f"{name}.seconds"
    if done.is_file():
        return float(done.read_text())
    seconds = call(args, tree, cache, log)
    done.write_text(f"{seconds}\n")
    return seconds


def run_commit(rev: str, work: Path, smoke: bool) -> dict:
    tree, commit = worktree(rev, work)
    out, cache = work / f"out-{commit}", work / f"cache-{commit}"
    if not (out / "demo.seconds").is_file():  # a fresh start: empty cache, no earlier outputs
        shutil.rmtree(out, ignore_errors=True)
        fresh_cache(cache)
    out.mkdir(parents=True, exist_ok=True)
    log = out / "log.txt"
    result: dict = {"commit": commit}
    demo = out / "demo"
    seconds = timed(out, "demo", ["run", *DEMO, "-o", str(demo), "-q", "--show", "0"], tree, cache, log)
    files = sorted(p.relative_to(demo).as_posix() for p in demo.glob("round*/interpretations.jsonl"))
    summary = json.loads((demo / "summary.json").read_text())
    result["demo"] = {"seconds": seconds, "assignments": digest(demo / "assignments.jsonl"),
                      "interpretations": {f: digest(demo / f) for f in files},
                      "acc": [r["metrics"]["acc"] for r in summary["rounds"]],
                      "names": [c["name"] for c in summary["clusters"]]}
    if smoke:
        seconds = timed(out, "smoke", ["bench", str(tree / "bench" / "configs" / "smoke.toml"), "--data-dir",
                                       str(data_dir()), "--out-dir", str(out / "smoke")], tree, cache, log)
        records = json.loads((out / "smoke" / "smoke.json").read_text())
        result["smoke"] = {"seconds": seconds, "cells": {f"{r['dataset']} {r['method']} seed {r['seed']}":
                                                         [r["acc"], r["nmi"], r["ari"]] for r in records}}
    return result


def render(data: dict) -> str:
    before, after = data["before"], data["after"]
    lines = [f"# Same results before and after: {before['commit']} vs {after['commit']}", "",
             f"Written by `python bench/same_results.py` on {data['date']}, {data['machine']}; the script's code at "
             f"{data['commit']}. The demo as `scripts/demo.sh` runs it and the smoke tier, each commit in a worktree "
             "of its own with an empty generation cache.", "",
             "| check | " + before["commit"] + " | " + after["commit"] + " | same |", "|---|---|---|---|"]
    b, a = before["demo"], after["demo"]
    lines.append(f"| demo assignments.jsonl (sha256) | `{b['assignments'][:16]}` | `{a['assignments'][:16]}` | "
                 f"{'yes' if b['assignments'] == a['assignments'] else '**no**'} |")
    for name in sorted(set(b["interpretations"]) | set(a["interpretations"])):
        x, y = b["interpretations"].get(name, "-"), a["interpretations"].get(name, "-")
        lines.append(f"| demo {name} (sha256) | `{x[:16]}` | `{y[:16]}` | {'yes' if x == y else '**no**'} |")
    lines.append(f"| demo ACC per round | {b['acc']} | {a['acc']} | {'yes' if b['acc'] == a['acc'] else '**no**'} |")
    lines.append(f"| demo cluster names | {len(b['names'])} | {len(a['names'])} | "
                 f"{'yes' if b['names'] == a['names'] else '**no**'} |")
    if "smoke" in before and "smoke" in after:
        cells = sorted(set(before["smoke"]["cells"]) | set(after["smoke"]["cells"]))
        same = [c for c in cells if before["smoke"]["cells"].get(c) == after["smoke"]["cells"].get(c)]
        lines.append(f"| smoke tier ACC/NMI/ARI, {len(cells)} cells | | | {len(same)} of {len(cells)} |")
        for c in cells:
            if c not in same:
                lines.append(f"| smoke {c} | {before['smoke']['cells'].get(c)} | {after['smoke']['cells'].get(c)} | **no** |")
    lines += ["", "Seconds (shared machine; not a speed measurement): " + "; ".join(
        f"{r['commit']} demo {r['demo']['seconds']:.0f}" + (f", smoke {r['smoke']['seconds']:.0f}" if "smoke" in r else "")
        for r in (before, after))]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", required=True, help="Commit (or any git revision) before the change.")
    parser.add_argument("--after", default="HEAD", help="Commit after the change (default HEAD).")
    parser.add_argument("--work", type=Path, default=Path("/tmp/coevo-same-results"), help="Worktrees, caches, runs.")
    parser.add_argument("--skip-smoke", action="store_true", help="Compare the demo only.")
    parser.add_argument("--results", type=Path, default=results_dir(), help="Where same-results.{json,md} go.")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    data = {**stamp(), "date": today(), "before": run_commit(args.before, args.work, not args.skip_smoke),
            "after": run_commit(args.after, args.work, not args.skip_smoke)}
    _, md = write_results(args.results, "same-results", data, render)
    print(md.read_text())


if __name__ == "__main__":
    main()
