"""The CUDA path, checked and timed on a GPU machine that has no model files -> cuda-check.{json,md}.

    python bench/cuda_check.py pack .gpu/spec                 # here: configs and tokenizers of the models
    python bench/cuda_check.py run .gpu/spec --out OUT         # on the GPU machine
    python bench/cuda_check.py run .gpu/spec --out OUT --generation-batch-size 300 --dpo-batch-size 16 \
        --name cuda-check-batches                               # the same at other batch sizes

Why random weights: the GPU machines this project is lent reach no model hub and take
a few tens of MB of files, so the packaged models cannot travel there. ``pack`` keeps
what defines each model but its weights (config, tokenizer, chat template, the
sentence-transformers modules); ``run`` builds each one with seeded random weights on
the GPU and runs the method through the public API, as a user's run would: a two-round
`full` run per LLM on the demo texts, then ``predict`` on new texts with the trained
adapter and embedder. It fails (non-zero exit) unless every model-bearing step held GPU
memory (``peak_gpu_mb_by_step``), DPO trained on CUDA in bf16, and predict returned a
cluster per text. Cluster quality means nothing here (the answers are noise); the step
times are the architectures' own, with one difference from real models: random answers
run to the token cap, where real ones stop after a few words.

``--tiny`` shrinks every model to two narrow layers, to try the script on a CPU first.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from coevo.bench.results import stamp, write_results

LLMS = ("qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct")
EMBEDDER = "all-MiniLM-L6-v2"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "coevo-model.json", "README.md")
MODEL_STEPS = ("generate", "dpo", "contrastive")
"""The steps that run a model: each must have held GPU memory."""
BATCH_SETTINGS = ("generation_batch_size", "dpo_batch_size")
"""What a GPU's speed turns on: its time at coevo's CPU-sized batches is per-step overhead."""


def pack(folder: Path) -> None:
    """Each model's folder without its weights, as resolved from the packaged models."""
    from coevo.models import load_embedder, resolve_llm_path

    folder.mkdir(parents=True, exist_ok=True)
    for llm in LLMS:
        _copy_without_weights(Path(resolve_llm_path(llm)), folder / llm)
    with tempfile.TemporaryDirectory() as tmp:
        load_embedder(EMBEDDER, device="cpu").save(tmp)
        _copy_without_weights(Path(tmp), folder / EMBEDDER)
    print(f"packed {', '.join((*LLMS, EMBEDDER))} into {folder}")


def _copy_without_weights(source: Path, target: Path) -> None:
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(*WEIGHT_FILES))


def materialize(spec: Path, out: Path, *, seed: int, tiny: bool) -> dict[str, Path]:
    """Each packed model with seeded random weights, saved where coevo loads a local folder from."""
    import torch
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

    paths = {}
    for name in (*LLMS, EMBEDDER):
        target = out / name
        shutil.copytree(spec / name, target)
        config = AutoConfig.from_pretrained(target)
        if tiny:
            config.update({"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                           "num_attention_heads": 2, **({"num_key_value_heads": 1} if name in LLMS else {})})
            if getattr(config, "layer_types", None):
                config.layer_types = config.layer_types[:2]
        torch.manual_seed(seed)
        if name in LLMS:
            model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
        else:
            model = AutoModel.from_config(config)
        model.save_pretrained(target)
        paths[name] = target
    return paths


def one_run(llm: Path, embedder: Path, corpus, held_out: list[str], folder: Path, batches: dict) -> dict:
    """A two-round `full` run and a predict, timed by the pipeline; the figures the check reads."""
    import torch

    from coevo import CoEvoConfig, CoEvolution
    from coevo.run_folder import read_json

    config = CoEvoConfig(n_clusters=len(set(corpus.labels)), task="intent", llm=str(llm), embedder=str(embedder),
                         rounds=2, cache_dir=str(folder / "cache"), **batches)
    started = time.perf_counter()
    model = CoEvolution(config, run_dir=folder / "run", progress=False).fit(corpus.texts, corpus.labels)
    fit_s = time.perf_counter() - started
    started = time.perf_counter()
    predicted = model.predict(held_out)
    predict_s = time.perf_counter() - started
    state = read_json(folder / "run" / "state.json")
    return {"seconds": state["seconds"], "peak_gpu_mb_by_step": state.get("peak_gpu_mb_by_step", {}),
            "peak_rss_mb_by_step": state["peak_rss_mb_by_step"], "fit_s": fit_s,
            "predict_s": predict_s, "predicted": len(predicted), "held_out": len(held_out),
            "tokens_per_second": [model.history_[r]["tokens_per_second"] for r in range(2)],
            "dpo": read_json(folder / "run" / "round1" / "dpo.json"),
            "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"}


def problems(record: dict, *, need_gpu: bool) -> list[str]:
    """What the check found wrong in one run's figures (empty when it passed)."""
    found = []
    if need_gpu:
        for key in record["seconds"]:
            step = key.split("/", 1)[1]
            if step in MODEL_STEPS and not record["peak_gpu_mb_by_step"].get(key, 0.0) > 0:
                found.append(f"{key} held no GPU memory")
        if record["dpo"].get("device") != "cuda" or not record["dpo"].get("bf16"):
            found.append(f"DPO trained on {record['dpo'].get('device')} with bf16={record['dpo'].get('bf16')}")
    if record["predicted"] != record["held_out"]:
        found.append(f"predict returned {record['predicted']} clusters for {record['held_out']} texts")
    return found


def render(data: dict) -> str:
    lines = ["# The CUDA path, with random-weight models", "", "Written by `bench/cuda_check.py`; do not edit by hand.", "",
             f"- commit `{data['commit']}`, {data['date']}, machine: {data['machine']}, {data['packages']}",
             f"- data: the {data['texts']} demo texts, K = {data['k']}, a two-round `full` run per LLM with the defaults "
             f"of `coevo run` (M = 4, pairs from half the texts), then predict on {data['held_out']} new texts",
             *([f"- batches: {data['batches']['generation_batch_size']} texts per decode batch, "
                f"{data['batches']['dpo_batch_size']} pairs per DPO step"] if "batches" in data else []),
             "- weights: seeded random, same architecture and tokenizer as the packaged models (the machine has no "
             "model files); answers are noise and run to the 20-token cap, so times are for that answer length "
             "and no cluster quality is shown", ""]
    lines += ["| LLM | check | device | fit | predict | generation tok/s (round 1, 2) | DPO s/pair | peak GPU |",
              "|---|---|---|---|---|---|---|---|"]
    measured = [r for r in data["records"] if "error" not in r]
    for r in data["records"]:
        if "error" in r:
            lines.append(f"| {r['llm']} | failed: {r['error']} | | | | | | |")
            continue
        check = "passed" if not r["problems"] else "; ".join(r["problems"])
        tok = ", ".join("-" if t is None else f"{t:,.0f}" for t in r["tokens_per_second"])
        gpu = max(r["peak_gpu_mb_by_step"].values(), default=0.0) / 1024
        lines.append(f"| {r['llm']} | {check} | {r['device']} | {r['fit_s']:.0f} s | {r['predict_s']:.1f} s | {tok} | "
                     f"{r['dpo']['seconds_per_pair']:.3f} ({r['dpo']['pairs']} pairs) | {gpu:.1f} GB |")
    if measured:
        lines += ["", "Each step: seconds / peak GPU memory (torch's allocator, GB).", "",
                  "| step | " + " | ".join(r["llm"] for r in measured) + " |", "|---|" + "---|" * len(measured)]
        for step in measured[0]["seconds"]:
            lines.append(f"| {step} | " + " | ".join(
                f"{r['seconds'][step]:.1f} s / {r['peak_gpu_mb_by_step'].get(step, 0.0) / 1024:.2f}" if step in r["seconds"] else "-"
                for r in measured) + " |")
    return "\n".join(lines) + "\n"


def run(spec: Path, out: Path, *, tiny: bool, commit: str | None, batches: dict, name: str = "cuda-check") -> int:
    import importlib.metadata as metadata

    import torch

    from coevo import CoEvoConfig
    from coevo.data import demo_path, load_corpus

    batches = {key: batches.get(key, getattr(CoEvoConfig, key)) for key in BATCH_SETTINGS}  # what ran is what is reported
    need_gpu = not tiny
    if need_gpu and not torch.cuda.is_available():
        print("bench/cuda_check.py: no CUDA device here; --tiny tries the script on a CPU", file=sys.stderr)
        return 2
    corpus = load_corpus(str(demo_path()))
    held_out = [f"{text} (sent again)" for text in corpus.texts[:50]]
    packages = ", ".join(f"{p} {metadata.version(p)}" for p in ("torch", "transformers", "trl", "peft", "sentence-transformers"))
    data = {**stamp(), **({"commit": commit} if commit else {}), "packages": packages, "texts": len(corpus.texts),
            "k": len(set(corpus.labels)), "held_out": len(held_out), "tiny": tiny, "batches": batches, "records": []}
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        paths = materialize(spec, Path(tmp) / "models", seed=0, tiny=tiny)
        for llm in LLMS:
            try:
                record = one_run(paths[llm], paths[EMBEDDER], corpus, held_out, Path(tmp) / llm, batches)
                record["problems"] = problems(record, need_gpu=need_gpu)
            except Exception as error:  # noqa: BLE001 - the record says what broke; the exit code fails the check
                record = {"error": f"{type(error).__name__}: {error}"[:300]}
            failed |= bool(record.get("error") or record.get("problems"))
            data["records"].append({"llm": llm, **record})
            write_results(out, name, data, render)
            print(json.dumps(data["records"][-1])[:2000], flush=True)
    print(render(data))
    return 1 if failed else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="write the models' configs and tokenizers, without weights")
    p.add_argument("folder", type=Path)
    r = sub.add_parser("run", help="build random-weight models and run the method on CUDA")
    r.add_argument("spec", type=Path, help="a folder written by `pack`")
    r.add_argument("--out", type=Path, required=True, help="folder for NAME.json and NAME.md")
    r.add_argument("--tiny", action="store_true", help="two narrow layers per model, no GPU needed: a dry run")
    r.add_argument("--commit", help="the commit to stamp, where the checkout has no git history")
    r.add_argument("--generation-batch-size", type=int, help="texts per decode batch (default: coevo's)")
    r.add_argument("--dpo-batch-size", type=int, help="pairs per DPO step (default: coevo's)")
    r.add_argument("--name", default="cuda-check", help="the result files' name (default: cuda-check)")
    args = parser.parse_args()
    if args.command == "pack":
        pack(args.folder)
        return
    batches = {key: getattr(args, key) for key in BATCH_SETTINGS if getattr(args, key) is not None}
    sys.exit(run(args.spec, args.out, tiny=args.tiny, commit=args.commit, batches=batches, name=args.name))


if __name__ == "__main__":
    main()
