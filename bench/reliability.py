"""What coevo does with bad input, a long text and kill -9: every case run, its answer recorded.

    python bench/reliability.py          # -> docs/results/reliability.{json,md}

1. Every bad-input case of tests/test_bad_input.py (the same table the test suite
   checks), run through the console entry point: exit status, the error line, and
   whether a traceback was printed.
2. One text of 5 MB on a single line, clustered with `--method full` and the test LLM:
   exit status, how many texts were shortened, and the run's peak memory.
3. The crash chain of tests/crash.py: a two-round `full` run of the demo sample killed
   with SIGKILL at every step (once its outputs are written, before it is recorded),
   resumed after each kill, then compared byte for byte with a run never interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # it reuses the test suite's cases (tests/), which are not part of the package

from coevo.atomic import read_json  # noqa: E402
from coevo.bench.results import results_dir, stamp, write_results  # noqa: E402
from coevo.config import CoEvoConfig  # noqa: E402
from tests.conftest import SMALL, TEST_LLM  # noqa: E402
from tests.crash import crash_chain, kill_points  # noqa: E402
from tests.test_bad_input import CASES  # noqa: E402

COMPARED = ("assignments.jsonl", "round1/interpretations.jsonl", "round1/pairs.jsonl", "round2/interpretations.jsonl",
            "round2/pairs.jsonl")


class _Request:
    """What a case's setup asks of pytest's ``request``: somewhere to put its cleanup."""

    def __init__(self):
        self.finalizers = []

    def addfinalizer(self, function):
        self.finalizers.append(function)


def bad_input_cases() -> list[dict]:
    from coevo.cli import main

    rows = []
    for name, (setup, words) in CASES.items():
        request = _Request()
        with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as patch:
            args = setup(Path(tmp), patch, request)
            out, err = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    main(list(args))
                    code = 0
                except SystemExit as exit:
                    code = exit.code
            for finalize in request.finalizers:
                finalize()
        errors = [line for line in err.getvalue().splitlines() if line.startswith("coevo: error:")]
        line = errors[0] if errors else ""
        rows.append({"case": name, "exit": code, "message": line, "error_lines": len(errors),
                     "traceback": "Traceback" in err.getvalue(),
                     "ok": code == 2 and len(errors) == 1 and all(w in line for w in words)
                     and "Traceback" not in err.getvalue()})
    return rows


def long_text(work: Path) -> dict:
    data = work / "long.jsonl"
    words = ("card", "refund", "parcel", "password", "crash")
    huge = " ".join(words[i % 5] for i in range(5 * 1024 * 1024 // 6))
    rows = [huge] + ["my card was stolen", "where is my parcel", "refund please", "app crashes on start"]
    data.write_text("".join(json.dumps({"text": t}) + "\n" for t in rows), encoding="utf-8")
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "coevo.cli", "run", str(data), "-k", "2", "--method", "full",
                             "--llm", TEST_LLM, "--rounds", "1", "--samples", "2", "--max-pairs", "2",
                             "-o", str(work / "long-run"), "-q", "--show", "0"], capture_output=True, text=True)
    state = work / "long-run" / "state.json"
    return {"line_bytes": len(huge.encode()), "exit": result.returncode, "seconds": time.perf_counter() - started,
            "shortened": read_json(work / "long-run" / "round1" / "generate.json", dict).get("shortened_texts")
            if result.returncode == 0 else None,
            "peak_rss_mb": read_json(state, dict).get("peak_rss_mb") if state.is_file() else None,
            "traceback": "Traceback" in result.stderr,
            "stderr": [line for line in result.stderr.splitlines() if line.strip()][-2:]}


def crash(work: Path) -> dict:
    reference = work / "uninterrupted"
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "coevo.cli", "run", "demo", *SMALL, "-o", str(reference), "-q",
                           "--show", "0"], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"the uninterrupted run failed: {done.stderr[-2000:]}")
    reference_seconds = time.perf_counter() - started
    points = kill_points(CoEvoConfig.from_dict(read_json(reference / "config.json", dict)))
    started = time.perf_counter()
    kills, final = crash_chain(["demo", *SMALL], work / "killed", points)
    identical = {name: final.returncode == 0 and (work / "killed" / name).read_bytes() == (reference / name).read_bytes()
                 for name in COMPARED}
    return {"reference_seconds": reference_seconds, "chain_seconds": time.perf_counter() - started,
            "kills": [{"point": k.point, "paused": k.paused, "recorded_before": k.recorded_before,
                       "redone": k.point not in k.recorded_before, "seconds": k.seconds} for k in kills],
            "final_exit": final.returncode, "identical": identical}


def render(report: dict) -> str:
    bad, long, chain = report["bad_input"], report["long_text"], report["crash"]
    lines = ["# Reliability: bad input, a long text, kill -9 at every step", "",
             "Written by `bench/reliability.py`; do not edit by hand.", "",
             f"- commit `{report['commit']}`, {report['date']}, machine: {report['machine']}; "
             f"{report['seconds']:.0f} s in all{report['note']}", "",
             f"## Bad input: {sum(r['ok'] for r in bad)} of {len(bad)} cases end in one error line, exit 2, "
             "no traceback", "",
             "The cases of `tests/test_bad_input.py`, run through `coevo.cli.main`.", "",
             "| case | exit | traceback | as expected | the error line |", "|---|---:|---|---|---|"]
    for r in bad:
        message = r["message"].replace("|", "\\|")
        lines.append(f"| {r['case']} | {r['exit']} | {'yes' if r['traceback'] else 'no'} | "
                     f"{'yes' if r['ok'] else '**no**'} | `{message}` |")
    lines += ["", "## One text of 5 MB on one line, `--method full`", "",
              f"- line of {long['line_bytes'] / 1e6:.1f} MB among 4 short texts, test LLM `{TEST_LLM}`, one round",
              f"- exit {long['exit']}, traceback: {'yes' if long['traceback'] else 'no'}, "
              f"texts shortened for the LLM: {long['shortened']}, peak memory "
              f"{long['peak_rss_mb']:.0f} MB, {long['seconds']:.0f} s" if long["peak_rss_mb"] is not None else
              f"- exit {long['exit']}, traceback: {'yes' if long['traceback'] else 'no'}: {long['stderr']}",
              "", "## kill -9 at every step, then `--resume`", "",
              f"A two-round `full` run of {SMALL[1]} demo texts (`{' '.join(SMALL)}`), killed with SIGKILL at each "
              "step once the step's outputs were written and before it was recorded; each kill's process is the "
              "`--resume` of the one before. Then a last `--resume` to the end.", "",
              "| killed at | reached | steps recorded when killed | redone on resume | seconds |",
              "|---|---|---|---|---:|"]
    for k in chain["kills"]:
        lines.append(f"| {k['point']} | {'yes' if k['paused'] else '**no**'} | {len(k['recorded_before'])} | "
                     f"{'yes' if k['redone'] else 'no'} | {k['seconds']:.0f} |")
    same = [name for name, ok in chain["identical"].items() if ok]
    lines += ["", f"- last resume: exit {chain['final_exit']}",
              f"- byte-identical to the uninterrupted run: {len(same)} of {len(chain['identical'])} files "
              f"({', '.join(f'`{n}`' + ('' if ok else ' **differs**') for n, ok in chain['identical'].items())})",
              f"- uninterrupted run {chain['reference_seconds']:.0f} s; the chain of "
              f"{len(chain['kills']) + 1} processes {chain['chain_seconds']:.0f} s", ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=results_dir())
    parser.add_argument("--note", default="", help="A remark for the header, e.g. what else ran on the machine.")
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        report = {**stamp(), "bad_input": bad_input_cases(), "long_text": long_text(work),
                  "crash": crash(work)}
    report["seconds"] = time.perf_counter() - started
    report["note"] = f"; {args.note}" if args.note else ""
    write_results(args.results, "reliability", report, render)
    print(f"wrote {args.results / 'reliability.md'}")
    failed = not all(r["ok"] for r in report["bad_input"]) or report["long_text"]["exit"] != 0 \
        or not all(report["crash"]["identical"].values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
