"""Speed benchmark: each stage of a round against a named baseline, in one run, on the same inputs.

    python bench/speed.py                      # all parts -> docs/results/speed.{json,md}
    python bench/speed.py --parts scale        # one part; other parts' records are kept

Parts:
  generation   our shared-prefill sampler vs model.generate(num_return_sequences=M) at its
               best batch size; fp32 and bf16; tokens/s and texts/s.
  dpo          seconds per pair with our DPO settings vs TRL's defaults (activation
               checkpointing on, max_length 1024), and with precomputed reference
               log-probabilities; reward accuracy and final loss beside each time.
  embedding    sentences/s of encoding and pairs/s of the contrastive step.
  scale        posterior score and KMeans (scikit-learn vs faiss) on synthetic unit vectors
               (384-d) for 10k, 100k and 1M interpretations: time and peak memory, each
               measured in its own process.

Everything is measured on this machine as it is; the report says if another
process was running (load average at start).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "results"
sys.path.insert(0, str(ROOT / "src"))

from coevo.atomic import atomic_write_json, atomic_write_text, read_json  # noqa: E402

TEXTS_FILE = ROOT.parent / "shared" / "data" / "bank77.jsonl"


def _texts(n: int) -> list[str]:
    from coevo.data import demo_path, load_corpus

    source = TEXTS_FILE if TEXTS_FILE.exists() else demo_path()
    return load_corpus(str(source)).texts[:n]


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --------------------------------------------------------------------------- generation

def part_generation(llm: str, n_texts: int, samples: int, max_new_tokens: int) -> list[dict]:
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    from coevo.generation import Interpreter, SamplingConfig

    class StopAtLineEnd(StoppingCriteria):  # the same stop rule as our sampler
        def __init__(self, ids):
            self.ids = ids

        def __call__(self, input_ids, scores, **kwargs):
            return torch.isin(input_ids[:, -1], self.ids)

    texts = _texts(n_texts)
    rows = []
    for dtype in (torch.bfloat16, torch.float32):
        it = Interpreter(llm, dtype=dtype)
        prompts = it.prompts(texts, "intent")
        with tempfile.TemporaryDirectory() as cache:
            it.cache_root = Path(cache)  # measure decoding, not the cache
            sampling = SamplingConfig(samples=samples, max_new_tokens=max_new_tokens, batch_size=n_texts, seed=0)
            t0 = time.perf_counter()
            answers = it.sample(prompts, sampling, progress=False)
            seconds = time.perf_counter() - t0
        tokens = _count_tokens(it.tokenizer, answers)
        rows.append(_gen_row("coevo shared prefill", dtype, n_texts, n_texts, samples, seconds, tokens))
        for batch in (8, 32):
            torch.manual_seed(0)
            t0 = time.perf_counter()
            produced = 0
            for start in range(0, len(prompts), batch):
                enc = it.tokenizer(prompts[start:start + batch], return_tensors="pt", padding=True, add_special_tokens=False)
                with torch.no_grad():
                    out = it.model.generate(
                        **enc, do_sample=True, temperature=0.8, top_p=0.95, top_k=0, num_return_sequences=samples,
                        max_new_tokens=max_new_tokens, stopping_criteria=StoppingCriteriaList([StopAtLineEnd(it._stop_ids)]),
                        pad_token_id=it.tokenizer.pad_token_id,
                    )
                produced += int((out[:, enc["input_ids"].shape[1]:] != it.tokenizer.pad_token_id).sum())
            seconds = time.perf_counter() - t0
            rows.append(_gen_row("generate(num_return_sequences)", dtype, n_texts, batch, samples, seconds, produced))
        del it
    return rows


def _count_tokens(tokenizer, answers) -> int:
    return sum(len(tokenizer(a, add_special_tokens=False)["input_ids"]) + 1 for text in answers for a in text)


def _gen_row(path, dtype, n_texts, batch, samples, seconds, tokens) -> dict:
    return {"part": "generation", "path": path, "dtype": str(dtype).replace("torch.", ""), "texts": n_texts,
            "batch_texts": batch, "samples": samples, "seconds": seconds, "tokens": tokens,
            "tokens_per_s": tokens / seconds, "texts_per_s": n_texts / seconds}


# --------------------------------------------------------------------------- DPO

def part_dpo(llm: str, n_pairs: int) -> list[dict]:
    from coevo.data import demo_path, load_corpus
    from coevo.preference import DPOSettings, preference_records, train_dpo
    from coevo.selection import PreferencePair

    corpus = load_corpus(str(demo_path()))
    rng = np.random.default_rng(0)
    labels = sorted(set(corpus.labels))
    pairs = []
    for i in range(n_pairs):
        wrong = labels[(labels.index(corpus.labels[i]) + 1 + int(rng.integers(len(labels) - 1))) % len(labels)]
        pairs.append(PreferencePair(i, corpus.labels[i].replace("_", " "), wrong.replace("_", " "), 1.0, 0.0))
    records = preference_records(corpus.texts, pairs, "intent", None)
    variants = {
        "coevo (no activation checkpointing, max_length 256)": DPOSettings(),
        "coevo + precomputed reference log-probs": DPOSettings(precompute_ref_log_probs=True),
        "TRL defaults (activation checkpointing, max_length 1024)": DPOSettings(gradient_checkpointing=True, max_length=1024),
    }
    rows = []
    for name, settings in variants.items():
        with tempfile.TemporaryDirectory() as out:
            summary = train_dpo(llm, records, out, settings=settings, progress=False)
        rows.append({"part": "dpo", "path": name, "pairs": n_pairs, "seconds": summary["train_seconds"],
                     "seconds_per_pair": summary["seconds_per_pair"], "reward_accuracy_last": summary["reward_accuracy_last"],
                     "loss_last": summary["loss_last"], "logp_chosen_last": summary["logp_chosen_last"]})
    return rows


# --------------------------------------------------------------------------- embedding

def part_embedding(embedder_name: str, n: int) -> list[dict]:
    from coevo import models
    from coevo.contrastive import train_contrastive

    texts = _texts(n)
    embedder = models.load_embedder(embedder_name)
    embedder.encode(texts[:64])
    t0 = time.perf_counter()
    embedder.encode(texts, batch_size=128)
    encode_s = time.perf_counter() - t0
    pairs = texts[: min(512, n)]
    with tempfile.TemporaryDirectory() as out:
        summary = train_contrastive(embedder, pairs, [t.lower()[::-1] for t in pairs], out, progress=False)
    return [
        {"part": "embedding", "path": f"encode ({embedder_name})", "items": n, "seconds": encode_s, "per_s": n / encode_s},
        {"part": "embedding", "path": f"contrastive MNRL ({embedder_name}, batch 32)", "items": len(pairs),
         "seconds": summary["train_seconds"], "per_s": summary["pairs_per_second"]},
    ]


# --------------------------------------------------------------------------- scale

def _scale_one(n: int, what: str, k: int = 100, dim: int = 384) -> dict:
    """Runs in its own process, so its peak memory is its own."""
    from coevo.clustering import kmeans, normalize
    from coevo.density import posterior_scores

    rng = np.random.default_rng(0)
    centres = normalize(rng.normal(size=(k, dim)).astype(np.float32))
    owner = np.arange(n) // 4
    x = normalize(centres[rng.integers(k, size=n)] + 0.6 * rng.normal(size=(n, dim)).astype(np.float32) / np.sqrt(dim) * 8)
    t0 = time.perf_counter()
    if what == "posterior":
        text_cluster = rng.integers(k, size=owner.max() + 1)
        posterior_scores(x, owner, text_cluster, k)
    else:
        kmeans(x, k, seed=0, n_init=1, backend=what)
    return {"part": "scale", "path": what, "n": n, "k": k, "dim": dim, "seconds": time.perf_counter() - t0, "peak_rss_mb": _peak_mb()}


def part_scale(sizes: list[int], sklearn_max: int) -> list[dict]:
    rows = []
    for n in sizes:
        for what in ("posterior", "faiss", "sklearn"):
            if what == "sklearn" and n > sklearn_max:
                rows.append({"part": "scale", "path": what, "n": n, "skipped": f"above {sklearn_max:,} points (too slow here)"})
                continue
            cmd = [sys.executable, __file__, "--scale-one", f"{n}:{what}"]
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
            if done.returncode != 0:
                rows.append({"part": "scale", "path": what, "n": n, "skipped": done.stderr.strip().splitlines()[-1:]})
            else:
                rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(rows[-1], file=sys.stderr)
    return rows


# --------------------------------------------------------------------------- report

def _machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem = next((int(line.split()[1]) // 1024 // 1024 for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal")), 0)
    return f"{cpu}, {os.cpu_count()} cores, {mem} GiB"


def _commit() -> str:
    def git(*args):
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    return git("rev-parse", "--short", "HEAD") + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def render(data: dict) -> str:
    rows = data["records"]
    lines = [
        "# Speed of each stage, against a named baseline",
        "",
        "Written by `bench/speed.py`; do not edit by hand.",
        "",
        f"- commit `{data['commit']}`, {data['date']}, machine: {data['machine']}",
        f"- load average at start of each part: {data['load']}",
        f"- models: LLM `{data['llm']}`, embedder `{data['embedder']}`",
        "",
    ]
    gen = [r for r in rows if r["part"] == "generation"]
    if gen:
        lines += ["## Generation", "", f"{gen[0]['texts']} Bank77 texts x {gen[0]['samples']} samples, at most "
                  f"{data['max_new_tokens']} new tokens, stop at line break; same sampling settings on both paths.", "",
                  "| path | dtype | texts per batch | seconds | tokens/s | texts/s | speed-up vs best generate() of same dtype |",
                  "|---|---|---|---|---|---|---|"]
        for r in gen:
            best = min(x["seconds"] for x in gen if x["dtype"] == r["dtype"] and x["path"] != "coevo shared prefill")
            lines.append(f"| {r['path']} | {r['dtype']} | {r['batch_texts']} | {r['seconds']:.1f} | {r['tokens_per_s']:.0f} | "
                         f"{r['texts_per_s']:.2f} | {best / r['seconds']:.2f}x |")
        lines.append("")
    dpo = [r for r in rows if r["part"] == "dpo"]
    if dpo:
        base = next((r for r in dpo if r["path"].startswith("TRL defaults")), dpo[0])
        lines += ["## DPO (one epoch, batch 4, LoRA r 16 on all linear layers, sigmoid + SFT loss)", "",
                  "| settings | pairs | s/pair | speed-up vs TRL defaults | reward accuracy (last step) | loss (last step) |",
                  "|---|---|---|---|---|---|"]
        for r in dpo:
            lines.append(f"| {r['path']} | {r['pairs']} | {r['seconds_per_pair']:.2f} | {base['seconds_per_pair'] / r['seconds_per_pair']:.2f}x | "
                         f"{_num(r['reward_accuracy_last'])} | {_num(r['loss_last'])} |")
        lines.append("")
    emb = [r for r in rows if r["part"] == "embedding"]
    if emb:
        lines += ["## Embedding and contrastive training", "", "| what | items | seconds | items/s |", "|---|---|---|---|"]
        lines += [f"| {r['path']} | {r['items']} | {r['seconds']:.1f} | {r['per_s']:.0f} |" for r in emb]
        lines.append("")
    scale = [r for r in rows if r["part"] == "scale"]
    if scale:
        lines += ["## Density and KMeans at scale (synthetic unit vectors, 384-d, K = 100, one initialisation)", "",
                  "| n | posterior score | KMeans faiss | KMeans scikit-learn |", "|---|---|---|---|"]
        for n in sorted({r["n"] for r in scale}):
            cells = []
            for what in ("posterior", "faiss", "sklearn"):
                r = next((x for x in scale if x["n"] == n and x["path"] == what), None)
                cells.append("-" if r is None else (f"not run: {r['skipped']}" if "skipped" in r else
                                                    f"{r['seconds']:.1f} s, {r['peak_rss_mb'] / 1024:.2f} GB peak"))
            lines.append(f"| {n:,} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def _num(x) -> str:
    return "-" if x is None else f"{x:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", nargs="+", default=["generation", "dpo", "embedding", "scale"])
    parser.add_argument("--llm", default="qwen2.5-coder-0.5b-instruct")
    parser.add_argument("--embedder", default="all-MiniLM-L6-v2")
    parser.add_argument("--texts", type=int, default=32)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=20)
    parser.add_argument("--pairs", type=int, default=16)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--sklearn-max", type=int, default=100_000)
    parser.add_argument("--scale-one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    if args.scale_one:
        n, what = args.scale_one.split(":")
        print(json.dumps(_scale_one(int(n), what)))
        return
    path = OUT / "speed.json"
    data = read_json(path) if path.exists() else {"records": []}
    load = {}
    for part in args.parts:
        load[part] = round(os.getloadavg()[0], 2)
        if part == "generation":
            new = part_generation(args.llm, args.texts, args.samples, args.max_new_tokens)
        elif part == "dpo":
            new = part_dpo(args.llm, args.pairs)
        elif part == "embedding":
            new = part_embedding(args.embedder, 2000)
        elif part == "scale":
            new = part_scale(args.sizes, args.sklearn_max)
        else:
            raise SystemExit(f"unknown part {part!r}")
        data["records"] = [r for r in data["records"] if r["part"] != part] + new
        data.update(commit=_commit(), date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), machine=_machine(),
                    llm=args.llm, embedder=args.embedder, max_new_tokens=args.max_new_tokens,
                    load={**data.get("load", {}), **load})
        atomic_write_json(path, data)
        atomic_write_text(OUT / "speed.md", render(data) + "\n")
        print(f"{part}: done", file=sys.stderr)


if __name__ == "__main__":
    main()
