"""Predict throughput and memory: `coevo predict` on a 100k-line file with a fitted model.

    python bench/predict.py                                  # -> docs/results/predict.{json,md}
    python bench/predict.py --lines 2000 --interp-lines 20 --llm smollm2-135m-instruct --samples 2 \
        --fit-sample 40 --work /tmp/predict-check --results /tmp/predict-check   # a quick check of the script

Two runs are fitted once on the bundled demo data (300 support requests, K = 10) and
kept under --work: `kmeans` (z = f(x), the text alone) and `expand` (z = f(x) joined
with the mean f(y) of --llm's interpretations). A --lines file is made from the demo
texts, repeated and perturbed (casing, punctuation, greetings, order numbers) so that
lines differ. Each measurement is `coevo predict`'s own code (predict_file, batches of
--batch-size) in a process of its own, so its peak memory (VmHWM) is its own:

  text          the kmeans run on all --lines lines
  text+interp   the expand run on the first --interp-lines lines (the LLM writes
                --samples interpretations of each, so a few hundred lines suffice)

Generation runs with an empty private generation cache (the converted models are
shared), so no interpretation is read from an earlier measurement. Model loading is
timed apart from predicting; texts/s counts predicting only.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path


from coevo.atomic import read_json
from coevo.bench.results import repo_root, results_dir, stamp, write_results
from coevo.provenance import peak_rss_mb

K = 10
GREETINGS = ("", "", "hi, ", "Hello. ", "hey ", "Good morning, ", "URGENT: ")
ENDINGS = ("", "", " thanks", " Thank you!", " please help", " asap", "!!", " (order #{n})", " - ref {n}")


def make_file(path: Path, lines: int, seed: int = 0) -> None:
    """The demo texts, repeated and perturbed, one JSON line each (with the demo label)."""
    from coevo.data import demo_path

    demo = [json.loads(line) for line in demo_path().read_text(encoding="utf-8").splitlines() if line.strip()]
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(lines):
            row = demo[i % len(demo)]
            text = row["text"]
            if rng.random() < 0.3:
                text = text.lower()
            if rng.random() < 0.2:
                text = text.rstrip(".!?")
            text = rng.choice(GREETINGS) + text + rng.choice(ENDINGS).format(n=rng.randrange(10_000, 99_999))
            handle.write(json.dumps({"text": text, "label": row["label"]}) + "\n")


def fit(run_dir: Path, method: str, llm: str, samples: int, sample: int | None) -> float:
    """Fitted once; a finished run with the same settings is reused. Returns the fit's seconds (0 when reused)."""
    if (run_dir / "summary.json").is_file():
        config = read_json(run_dir / "config.json")
        same_llm = method == "kmeans" or (config["llm"] == llm and config["samples"] == samples)
        if config["method"] == method and same_llm and read_json(run_dir / "summary.json")["n_texts"] == (sample or 300):
            return 0.0
        raise SystemExit(f"bench/predict.py: {run_dir} holds a run with other settings; remove it or give another --work")
    started = time.perf_counter()
    args = [sys.executable, "-m", "coevo.cli", "run", "demo", "-k", str(K), "--method", method, "-o", str(run_dir),
            "-q", "--show", "0"]
    if method != "kmeans":
        args += ["--llm", llm, "--samples", str(samples)]
    if sample is not None:
        args += ["--sample", str(sample)]
    subprocess.run(args, check=True, env=_env())
    return time.perf_counter() - started


def worker(run_dir: Path, data: Path, batch_size: int) -> dict:
    """One measurement, in its own process: load the models, then predict the whole file."""
    from coevo import CoEvolution
    from coevo.predict import predict_file

    started = time.perf_counter()
    model = CoEvolution.load(run_dir)
    predictor = model._predictor()
    predictor.embedder  # noqa: B018 - loaded here so that predicting is timed alone
    if predictor.reads_interpretations:
        predictor.interpreter  # noqa: B018
    loaded = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        counts = predict_file(model, str(data), Path(tmp) / "predictions.jsonl", batch_size=batch_size, progress=False)
    done = time.perf_counter()
    return {"texts": counts["texts"], "load_s": loaded - started, "predict_s": done - loaded, "wall_s": done - started,
            "texts_per_s": counts["texts"] / (done - loaded), "peak_rss_mb": peak_rss_mb(),
            "clusters_used": sum(1 for c in counts["per_cluster"] if c)}


def measure(run_dir: Path, data: Path, batch_size: int, cache: Path) -> dict:
    env = _env()
    env["COEVO_CACHE"] = str(cache)  # private generation cache; the models folder is linked in
    out = subprocess.run([sys.executable, __file__, "--worker", str(run_dir), str(data), str(batch_size)],
                         check=True, capture_output=True, text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def render(data: dict) -> str:
    s = data["settings"]
    lines = ["# Predict throughput and memory", "", "Written by `bench/predict.py`; do not edit by hand.", "",
             f"- commit `{data['commit']}`, {data['date']}, machine: {data['machine']}; load average at start "
             f"{data['load_average']}; {data['seconds']:.0f} s in all",
             f"- models: embedder `{s['embedder']}`, LLM `{s['llm']}` ({s['samples']} interpretations a text, "
             f"at most {s['max_new_tokens']} new tokens, generation backend `{s['generation_backend']}`)",
             f"- fitted on the demo data ({s['fit_texts']} texts, K = {K}); input: the demo texts repeated and perturbed, "
             f"`coevo predict` in batches of {s['batch_size']}, each measurement in a process of its own with an empty "
             "generation cache",
             "- texts/s counts predicting only (reading, representing, assigning, writing); loading the models is "
             "the load column; peak memory is the process's VmHWM", "",
             "| representation | run | texts | load (s) | predict (s) | texts/s | wall (s) | peak memory (GB) |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in data["rows"]:
        lines.append(f"| {r['representation']} | `{r['method']}` | {r['texts']:,} | {r['load_s']:.1f} | {r['predict_s']:.1f} | "
                     f"{_rate(r['texts_per_s'])} | {r['wall_s']:.1f} | {r['peak_rss_mb'] / 1024:.2f} |")
    return "\n".join(lines) + "\n"


def _rate(x: float) -> str:
    return f"{x:,.1f}" if x >= 10 else f"{x:.2f}"


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(repo_root() / "src"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        env.setdefault(name, "1")
    return env


def main() -> None:
    from coevo.config import CoEvoConfig

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=100_000, help="lines of the file predicted with the text alone")
    parser.add_argument("--interp-lines", type=int, default=300, help="lines predicted with interpretations")
    parser.add_argument("--llm", default=CoEvoConfig.llm)
    parser.add_argument("--samples", type=int, default=CoEvoConfig.samples)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--fit-sample", type=int, help="fit on a stratified sample of the demo texts (a quick check)")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "coevo-bench-predict",
                        help="the fitted runs and the generated input files")
    parser.add_argument("--results", type=Path, default=results_dir(), help="where predict.{json,md} go")
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        run_dir, data, batch_size = args.worker
        print(json.dumps(worker(Path(run_dir), Path(data), int(batch_size))))
        return

    from coevo.models import cache_root

    started, load_average = time.perf_counter(), round(os.getloadavg()[0], 2)
    work = args.work
    big, small = work / f"predict-{args.lines}.jsonl", work / f"predict-{args.interp_lines}.jsonl"
    if not big.is_file():
        make_file(big, args.lines)
    if not small.is_file():
        make_file(small, args.interp_lines)
    fit_s = {"kmeans": fit(work / "kmeans", "kmeans", args.llm, args.samples, args.fit_sample),
             "expand": fit(work / f"expand-{args.llm}-m{args.samples}", "expand", args.llm, args.samples, args.fit_sample)}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        cache.mkdir()
        (cache_root() / "models").mkdir(parents=True, exist_ok=True)
        (cache / "models").symlink_to(cache_root() / "models", target_is_directory=True)
        for representation, method, run_dir, data in (
            ("text", "kmeans", work / "kmeans", big),
            ("text+interp", "expand", work / f"expand-{args.llm}-m{args.samples}", small),
        ):
            row = measure(run_dir, data, args.batch_size, cache)
            rows.append({"representation": representation, "method": method, **row})
            print(f"{representation}: {row['texts']:,} texts, {_rate(row['texts_per_s'])} texts/s, "
                  f"peak {row['peak_rss_mb'] / 1024:.2f} GB", file=sys.stderr)
    config = read_json(work / f"expand-{args.llm}-m{args.samples}" / "config.json")
    result = {
        **stamp(),
        "load_average": load_average, "seconds": time.perf_counter() - started, "fit_seconds": fit_s,
        "settings": {"embedder": config["embedder"], "llm": config["llm"], "samples": config["samples"],
                     "max_new_tokens": config["max_new_tokens"], "generation_backend": config["generation_backend"],
                     "batch_size": args.batch_size, "lines": args.lines, "interp_lines": args.interp_lines,
                     "fit_texts": read_json(work / "kmeans" / "summary.json")["n_texts"]},
        "rows": rows,
    }
    write_results(args.results, "predict", result, render)
    print(f"wrote {args.results / 'predict.md'}", file=sys.stderr)


if __name__ == "__main__":
    main()
