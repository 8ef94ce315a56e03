"""Tests of coevo.bench: config checks, report rendering, record merging, and the smoke tier end to end.

Everything but the last test runs on fake data and fake records in a few
seconds; the last one runs the real smoke tier (tiny models) into a tmp folder.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from coevo.bench import (
    DATASET_TASKS,
    ReportMeta,
    Record,
    load_bench_config,
    merge_records,
    read_records,
    render_markdown,
    run_bench,
)
from coevo.errors import CoevoError

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "bench" / "configs" / "smoke.toml"
DATA = REPO.parent / "shared" / "data"


@pytest.fixture
def data_dir(tmp_path) -> Path:
    """Two tiny labelled datasets under real dataset names (3 classes, 12 texts each)."""
    folder = tmp_path / "data"
    folder.mkdir()
    for name in ("bank77", "goemo"):
        rows = [{"text": f"{name} text {i} about {c}", "label": c} for c in ("a", "b", "c") for i in range(4)]
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def write_config(tmp_path: Path, body: str, data_dir: Path | None = None, name: str = "tier.toml") -> Path:
    path = tmp_path / name
    head = f'data_dir = "{data_dir}"\n' if data_dir is not None else ""
    path.write_text(head + body)
    return path


GOOD = """
datasets = ["bank77", "goemo"]
methods = ["kmeans", "full"]
seeds = [0, 1, 2]
[settings]
rounds = 2
"""


# ------------------------------------------------------------------------------------------ config


def test_good_config_parses(tmp_path, data_dir):
    config = load_bench_config(write_config(tmp_path, GOOD + '[[extra]]\nmethods = ["no-dpo"]\ndatasets = ["goemo"]\n',
                                            data_dir))
    assert config.tier == "tier" and config.seed_policy == "recluster"
    assert config.methods == ("kmeans", "full", "no-dpo")
    assert ("goemo", "no-dpo") in config.cells and ("bank77", "no-dpo") not in config.cells
    assert [v.name for v in config.variants] == ["default"] and config.variants[0].settings == {"rounds": 2}


@pytest.mark.parametrize(
    "body, key, needle",
    [
        (GOOD.replace('"full"', '"fulll"'), "methods", "unknown method 'fulll'"),
        (GOOD.replace('"goemo"', '"goemotions"'), "datasets", "unknown dataset 'goemotions'"),
        (GOOD + '[[extra]]\nmethods = ["magic"]\ndatasets = ["goemo"]\n', "extra[0].methods", "unknown method 'magic'"),
        (GOOD.replace("rounds = 2", "roundz = 2"), "settings.roundz", "unknown setting"),
        (GOOD.replace("rounds = 2", 'rounds = "2"'), "settings.rounds", "must be an integer"),
        (GOOD.replace("rounds = 2", "rounds = 0"), "settings", "--rounds"),
        ('seed_policy = "sometimes"\n' + GOOD, "seed_policy", "'sometimes'"),
        ("seedz = [1]\n" + GOOD, "seedz", "unknown key"),
        (GOOD.replace("seeds = [0, 1, 2]", "seeds = [0, 0]"), "seeds", "twice"),
        (GOOD.replace("[settings]", "sample = 1\n[settings]"), "sample", "at least 2"),
        (GOOD + '[[variants]]\nembedder = "x"\n', "variants[0].name", "name"),
        (GOOD.replace("[settings]", '[groups]\ndev = ["reddit"]\n[settings]'), "groups.dev", "unknown dataset of the config"),
        ('reuse = ["tier"]\n' + GOOD, "reuse", "other tiers"),
    ],
)
def test_config_errors_name_the_file_and_key(tmp_path, data_dir, body, key, needle):
    path = write_config(tmp_path, body, data_dir)
    with pytest.raises(CoevoError) as info:
        load_bench_config(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message and f"'{key}'" in message and needle in message, message


def test_missing_data_dir_names_the_key_or_the_option(tmp_path):
    path = write_config(tmp_path, GOOD, tmp_path / "nowhere")
    with pytest.raises(CoevoError, match=r"key 'data_dir'.*nowhere.*not found"):
        load_bench_config(path)
    with pytest.raises(CoevoError, match=r"option --data-dir.*elsewhere"):
        load_bench_config(path, data_dir=tmp_path / "elsewhere")


def test_missing_dataset_file_and_bad_toml(tmp_path, data_dir):
    (data_dir / "goemo.jsonl").unlink()
    with pytest.raises(CoevoError, match=r"no goemo\.jsonl"):
        load_bench_config(write_config(tmp_path, GOOD, data_dir))
    with pytest.raises(CoevoError, match=r"not valid TOML"):
        load_bench_config(write_config(tmp_path, "datasets = [", data_dir, name="broken.toml"))
    with pytest.raises(CoevoError, match=r"file not found"):
        load_bench_config(tmp_path / "absent.toml")


def test_sample_below_the_classes_is_a_config_error(tmp_path, data_dir):
    config = load_bench_config(write_config(tmp_path, "sample = 2\n" + GOOD, data_dir))
    with pytest.raises(CoevoError, match=r"dataset bank77: sample size: 2 is below the 3 classes"):
        run_bench(config, dry_run=True, out_dir=tmp_path / "out", log=lambda _: None)


def test_shipped_configs_parse():
    if not DATA.is_dir():
        pytest.skip(f"no data folder {DATA}")
    shipped = sorted((REPO / "bench" / "configs").glob("*.toml"))
    assert {"smoke", "cpu", "full", "baseline"} <= {path.stem for path in shipped}
    for path in shipped:  # every tier's config, so a broken one fails here and not hours into a bench
        config = load_bench_config(path)
        assert set(config.datasets) <= set(DATASET_TASKS), path.name
    cpu = load_bench_config(REPO / "bench" / "configs" / "cpu.toml")
    assert len(cpu.datasets) == 14 and len(cpu.cells) == 14 * 2 and cpu.sample == 600
    assert sorted(cpu.groups["dev"] + cpu.groups["confirmation"]) == sorted(cpu.datasets)  # the halves of issue 13
    short_text = load_bench_config(REPO / "bench" / "configs" / "short-text-cpu.toml")
    assert not set(short_text.datasets) & set(cpu.datasets)  # in neither half: rules may be tried on them
    baseline = load_bench_config(REPO / "bench" / "configs" / "baseline.toml")
    assert [(v.settings["embedder"], v.settings["kmeans_init"]) for v in baseline.variants] == [
        ("all-MiniLM-L6-v2", 50), ("all-mpnet-base-v2", 50), ("all-MiniLM-L6-v2", 5)]


def test_dry_run_plans_every_cell_and_writes_nothing(tmp_path, data_dir):
    config = load_bench_config(write_config(tmp_path, GOOD, data_dir))
    lines: list[str] = []
    outcome = run_bench(config, dry_run=True, out_dir=tmp_path / "out", log=lines.append)
    assert outcome.planned == 2 * 2 * 3 and outcome.ran == 0 and not (tmp_path / "out").exists()
    assert any("--config" in line and "full-seed0.config.json" in line and "then recluster seeds 1, 2" in line
               for line in lines)
    only = run_bench(config, only=["goemo"], dry_run=True, out_dir=tmp_path / "out", log=lambda _: None)
    assert only.planned == 2 * 3
    with pytest.raises(CoevoError, match=r"option --only: 'reddit' is not a dataset"):
        run_bench(config, only=["reddit"], dry_run=True, out_dir=tmp_path / "out", log=lambda _: None)


def test_reuse_takes_the_cells_another_tier_ran_asked_the_same(tmp_path, data_dir):
    """A cell another tier ran with the same sample, seed and settings is taken from its results, not run
    again, and says where it came from; one asked otherwise is still run."""
    from dataclasses import asdict

    from coevo.bench.runner import _plan

    body = 'reuse = ["other"]\ndatasets = ["bank77", "goemo"]\nmethods = ["kmeans"]\nseeds = [0]\nseed_policy = "full"\n'
    config = load_bench_config(write_config(tmp_path, body, data_dir))
    out = tmp_path / "out"
    with pytest.raises(CoevoError, match=r"key 'reuse': tier 'other' has no results file"):
        run_bench(config, dry_run=True, out_dir=out, log=lambda _: None)
    bank77, goemo = _plan(config, config.datasets, out / config.tier)
    same = record("bank77", "kmeans", 0, 61.0, options=bank77.options)
    same.config, same.k = bank77.expected_config(), bank77.k
    other_sample = record("goemo", "kmeans", 0, 40.0, options={**goemo.options, "sample": 6})
    out.mkdir()
    (out / "other.json").write_text(json.dumps([asdict(r) for r in (same, other_sample)]))

    lines: list[str] = []
    plan = run_bench(config, dry_run=True, out_dir=out, log=lines.append)
    assert (plan.reused, plan.planned) == (1, 1)
    assert any("bank77 · kmeans · seed 0: taken from other.json" in line for line in lines)
    done = run_bench(config, only=["bank77"], out_dir=out, log=lambda _: None)
    assert (done.reused, done.ran) == (1, 0) and "1 taken from other tiers" in done.summary_line()
    [taken] = read_records(out / "tier.json")
    assert taken.reused_from == "other" and taken.acc == 61.0 and taken.commit == same.commit
    assert "1 from `other`" in (out / "tier.md").read_text()
    again = run_bench(config, only=["bank77"], dry_run=True, out_dir=out, log=lambda _: None)
    assert (again.cached, again.reused) == (1, 0)


def test_render_rewrites_the_whole_report_and_runs_nothing(tmp_path, data_dir):
    """A bench of a trimmed copy of the config renders the report in the copy's order; --render with
    the whole config renders it as the config says, without running a cell."""
    from dataclasses import asdict

    from coevo.bench.runner import _plan

    body = 'datasets = ["bank77", "goemo"]\nmethods = ["kmeans"]\nseeds = [0]\nseed_policy = "full"\n'
    config = load_bench_config(write_config(tmp_path, body, data_dir))
    (tmp_path / "trimmed").mkdir()
    trimmed = load_bench_config(write_config(tmp_path / "trimmed", body.replace('"bank77", ', ""), data_dir))
    out = tmp_path / "out"
    with pytest.raises(CoevoError, match=r"option --render: tier 'tier' has no results file"):
        run_bench(config, render=True, out_dir=out, log=lambda _: None)
    records = []
    for unit, acc in zip(_plan(config, config.datasets, out / config.tier), (61.0, 40.0)):
        r = record(unit.dataset, "kmeans", 0, acc, options=unit.options)
        r.config, r.k = unit.expected_config(), unit.k
        records.append(asdict(r))
    out.mkdir()
    (out / "tier.json").write_text(json.dumps(records))
    report = out / "tier.md"

    rows = lambda: [line.split(" |")[0] for line in report.read_text().splitlines() if line.startswith("| goemo |")
                    or line.startswith("| bank77 |")]
    run_bench(trimmed, render=True, out_dir=out, log=lambda _: None)
    assert rows()[:2] == ["| goemo", "| bank77"]  # the first table, in the trimmed config's order: its datasets first
    outcome = run_bench(config, render=True, out_dir=out, log=lambda _: None)
    assert rows()[:2] == ["| bank77", "| goemo"]
    assert outcome.ran == 0 and not (out / "tier").exists() and "nothing was run" in outcome.summary_line()


def test_cli_bad_config_is_one_line_exit_2(tmp_path, data_dir):
    path = write_config(tmp_path, GOOD.replace('"kmeans"', '"kmeanz"'), data_dir)
    result = subprocess.run([sys.executable, "-m", "coevo.cli", "bench", str(path), "--dry-run"],
                            capture_output=True, text=True, timeout=120)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith("coevo: error:"), result.stderr
    assert "kmeanz" in lines[0] and "'methods'" in lines[0]


# ------------------------------------------------------------------------------------------ records and report


def record(dataset: str, method: str, seed: int, acc: float, status: str = "ok", variant: str = "default",
           options: dict | None = None) -> Record:
    options = {"llm": "tiny", "rounds": 2} if options is None else options
    return Record(dataset=dataset, method=method, variant=variant, seed=seed, status=status, options=options,
                  source="run" if seed == 0 else "recluster", seed_policy="recluster", run_dir="x", task="intent",
                  n_texts=100, k=10, acc=acc if status == "ok" else None, nmi=acc / 2 if status == "ok" else None,
                  ari=acc / 4 if status == "ok" else None, wall_s=60.0, peak_rss_mb=2048.0,
                  error=None if status == "ok" else "boom (exit status 1)", commit="abc1234", machine="Test CPU",
                  date="2025-01-02T03:04:05+00:00")


def test_merge_replaces_by_key_and_keeps_the_rest():
    old = [record("bank77", "full", 0, 50.0), record("goemo", "full", 0, 30.0, status="failed")]
    new = [record("goemo", "full", 0, 31.0), record("goemo", "kmeans", 0, 20.0)]
    merged = merge_records(old, new)
    assert [(r.dataset, r.method, r.seed) for r in merged] == [("bank77", "full", 0), ("goemo", "full", 0),
                                                                ("goemo", "kmeans", 0)]
    assert merged[1].status == "ok" and merged[1].acc == 31.0
    other_variant = merge_records(merged, [record("bank77", "full", 0, 1.0, variant="mpnet")])
    assert len(other_variant) == 4


def test_read_records_rejects_a_foreign_file(tmp_path):
    path = tmp_path / "r.json"
    path.write_text('{"not": "a list"}')
    with pytest.raises(CoevoError, match="not a list of bench records"):
        read_records(path)
    assert read_records(tmp_path / "absent.json") == []


def test_render_markdown_tables():
    records = [record("bank77", m, s, base + s) for m, base in (("kmeans", 40.0), ("full", 50.0)) for s in (0, 1, 2)]
    records += [record("goemo", "kmeans", s, 20.0 + s) for s in (0, 1, 2)]
    records += [record("goemo", "full", 0, 19.0)]
    records += [record("goemo", "expand", 0, 0.0, status="failed")]
    records[1].commit = "abc1234, def5678"  # a run resumed on other code names both commits
    meta = ReportMeta(tier="t", seed_policy="recluster", seeds=(0, 1, 2), sample=100,
                      common={"llm": "tiny", "rounds": 2}, variants={"default": {"llm": "tiny", "rounds": 2}},
                      datasets=("bank77", "goemo", "reddit"), methods=("kmeans", "expand", "full"))
    text = render_markdown(records, meta)
    assert "recluster policy" in text and "Test CPU" in text and "LLM `tiny`" in text
    assert "- Commit: abc1234, def5678; results" in text  # each commit once
    acc = text.split("## ACC (%)")[1].split("## NMI")[0]
    assert "| dataset | kmeans | expand | full |" in acc
    assert "| bank77 | 41.0 ± 1.0 | - | **51.0 ± 1.0** |" in acc
    assert "| goemo | **21.0 ± 1.0** | - | 19.0* |" in acc
    assert "reddit" not in acc  # no results at all: no row
    assert "| *mean of the 2 datasets with kmeans, full* | 31.0 | - | 35.0 |" in acc
    assert "- full beats kmeans on 1 of 2 datasets (higher mean); mean difference +4.0, lowest -2.0 (goemo)." in acc
    assert "full beats expand" not in acc
    assert "## Failed cells" in text and "goemo · expand · seed 0: boom" in text
    assert "| bank77 | 100 | 10 | 1.0 · 2.0 | - | 1.0 · 2.0 |" in text  # cost: minutes · GB of the seed-0 runs


def test_round_table_says_what_each_round_clustered():
    """The weight of the interpretations per round: what represent gate chose, or - for a run that predates it."""
    run = record("bank77", "full", 0, 50.0)
    run.rounds_detail = [{"round": 1, "distinct_pct": 90.0, "acc": 48.0, "interp_weight": 0.5},
                         {"round": 2, "distinct_pct": 88.0, "acc": 50.0, "interp_weight": 0.0}]
    older = record("goemo", "full", 0, 30.0)
    older.rounds_detail = [{"round": 1, "distinct_pct": 70.0, "acc": 30.0}]
    meta = ReportMeta(tier="t", seed_policy="full", seeds=(0,), sample=100, common={"llm": "tiny", "rounds": 2},
                      variants={"default": {"llm": "tiny", "rounds": 2}}, methods=("full",))
    rows = render_markdown([run, older], meta).split("## Per round")[1]
    assert "| interp-only ACC | w | ACC |" in rows
    assert "| bank77 | full | 1 | 90.0 | - | - | - | - | 0.5 | 48.0 |" in rows
    assert "| bank77 | full | 2 | 88.0 | - | - | - | - | 0 | 50.0 |" in rows
    assert "| goemo | full | 1 | 70.0 | - | - | - | - | - | 30.0 |" in rows


def test_cost_per_thousand_texts_counts_every_session_and_keeps_machines_apart():
    """A resumed run's harness wall time is its last session's; its own step times cover all of them."""
    resumed = record("bank77", "full", 0, 50.0)
    resumed.wall_s, resumed.seconds_total = 600.0, 6000.0  # 10 min this session, 100 min over all sessions
    other_machine = record("goemo", "full", 0, 50.0)
    other_machine.machine, other_machine.wall_s = "Other CPU", 120.0
    records = [resumed, other_machine, record("bank77", "kmeans", 0, 40.0), record("goemo", "kmeans", 0, 40.0)]
    meta = ReportMeta(tier="t", seed_policy="full", seeds=(0,), sample=100, common={"llm": "tiny", "rounds": 2},
                      variants={"default": {"llm": "tiny", "rounds": 2}}, methods=("kmeans", "full"))
    cost = render_markdown(records, meta).split("## Cost per run")[1]
    assert "| bank77 | 100 | 10 | 1.0 · 2.0 | 10.0 · 2.0 |" in cost  # the table keeps the harness's wall time
    # 100 texts: 100 min -> 1,000 min per 1,000 texts; 1 min -> 10; each machine its own row
    assert "| *minutes per 1,000 texts on Test CPU (mean over the runs there; every session of a resumed run)* | | " \
           "| 10.0 (2) | 1000.0 (1) |" in cost
    assert "| *minutes per 1,000 texts on Other CPU (mean over the runs there; every session of a resumed run)* | | " \
           "| - | 20.0 (1) |" in cost


def test_groups_get_their_own_means_and_comparisons(tmp_path, data_dir):
    config = load_bench_config(write_config(tmp_path, GOOD.replace(
        "[settings]", '[groups]\ndev = ["bank77"]\nconfirmation = ["goemo"]\n[settings]'), data_dir))
    assert config.groups == {"dev": ("bank77",), "confirmation": ("goemo",)}
    cells = (("bank77", "kmeans", 40.0), ("bank77", "full", 45.0), ("goemo", "kmeans", 20.0), ("goemo", "full", 19.0))
    records = [record(d, m, 0, acc, options={"rounds": 2}) for d, m, acc in cells]
    text = render_markdown(records, ReportMeta.of(config))
    acc = text.split("## ACC (%)")[1].split("## NMI")[0]
    assert "Group `dev`: bank77;" in text
    assert "- full beats kmeans on 1 of 2 datasets (higher mean); mean difference +2.0, lowest -1.0 (goemo)." in acc
    assert "- full beats kmeans on 1 of 1 datasets of group dev (higher mean); mean difference +5.0" in acc
    assert "- full beats kmeans on 0 of 1 datasets of group confirmation (higher mean); mean difference -1.0" in acc


def test_render_markdown_with_variants_labels_columns():
    variants = {"minilm": {"embedder": "a", "kmeans_init": 50, "rounds": 2},
                "mpnet": {"embedder": "b", "kmeans_init": 5, "rounds": 2}}
    records = [record("bank77", "kmeans", s, 40.0, variant=v, options=variants[v])
               for v in ("minilm", "mpnet") for s in (0, 1, 2)]
    meta = ReportMeta(tier="baseline", common={"kmeans_init": 50, "rounds": 2}, variants=variants, methods=("kmeans",))
    text = render_markdown(records, meta)
    assert "| dataset | kmeans (minilm) | kmeans (mpnet) |" in text
    assert "Variant `mpnet`: embedder `b`, KMeans restarts `5`." in text and "beats" not in text
    # a kmeans-only table reports the settings KMeans reads, and not the LLM's
    assert "Settings of all variants: KMeans restarts `50`;" in text and "rounds" not in text


def test_an_llm_variant_without_kmeans_is_judged_against_the_kmeans_of_another():
    """The LLM-size tier runs kmeans once (it reads no LLM); each LLM's full is compared with it."""
    variants = {"small": {"llm": "a"}, "large": {"llm": "b"}}
    records = [record("bank77", "kmeans", 0, 40.0, variant="small", options=variants["small"]),
               record("bank77", "full", 0, 45.0, variant="small", options=variants["small"]),
               record("bank77", "full", 0, 48.0, variant="large", options=variants["large"])]
    meta = ReportMeta(tier="llm", seed_policy="full", seeds=(0,), common={}, variants=variants,
                      methods=("kmeans", "full"), variant_methods={"large": ("full",)})
    acc = render_markdown(records, meta).split("## ACC (%)")[1].split("## NMI")[0]
    assert "- full (small) beats kmeans (small) on 1 of 1 datasets (higher mean); mean difference +5.0" in acc
    assert "- full (large) beats kmeans (small) on 1 of 1 datasets (higher mean); mean difference +8.0" in acc
    assert "- full (large) beats full (small) on 1 of 1 datasets (higher mean); mean difference +3.0" in acc


def test_render_leaves_out_records_asked_with_other_settings():
    """A setting changed since a cell ran: its old numbers must not sit under today's settings."""
    now = {"embedder": "a", "kmeans_init": 50}
    records = [record("bank77", "kmeans", s, 60.0, variant="minilm", options=now) for s in (0, 1, 2)]
    records += [record("goemo", "kmeans", s, 10.0, variant="minilm", options={**now, "kmeans_init": 5}) for s in (1, 2)]
    records[-1].commit = "old1234"
    meta = ReportMeta(tier="baseline", variants={"minilm": now}, methods=("kmeans",))
    text = render_markdown(records, meta)
    acc = text.split("## ACC (%)")[1].split("## NMI")[0]
    assert "| bank77 | 60.0 ± 0.0 |" in acc and "goemo" not in acc
    assert "## Stale cells" in text and "goemo · kmeans · seed 2 (commit old1234)" in text
    assert "old1234" not in text.split("## ACC")[0]  # the header's commits are those of the reported cells


def test_a_changed_default_makes_a_cell_stale_and_not_done(tmp_path):
    """A bench config that leaves a setting to its default: when the default changes, the runs made
    under the old one must neither count as done nor sit under today's settings."""
    from coevo.bench.runner import Unit, Variant, _is_done

    settings = {"rounds": 2}
    unit = Unit("bank77", "kmeans", Variant("default", settings), 0, (), tmp_path / "run", tmp_path / "bank77.jsonl",
                "intent", 10, 100, 100, "full")
    ran_now = record("bank77", "kmeans", 0, 60.0, options=unit.options)
    ran_now.config = unit.expected_config()
    ran_before = record("bank77", "kmeans", 0, 60.0, options=unit.options)
    ran_before.config = {**unit.expected_config(), "kmeans_init": 5}  # what the default was then
    unknown = record("bank77", "kmeans", 0, 60.0, options=unit.options)
    unknown.config = {**unit.expected_config(), "a_setting_since_removed": 1}
    legacy = record("bank77", "kmeans", 0, 60.0, options=unit.options)  # made before configs were kept
    key = ("bank77", "kmeans", "default", 0)
    assert _is_done({key: ran_now}, unit, 0) and _is_done({key: legacy}, unit, 0)
    assert not _is_done({key: ran_before}, unit, 0) and not _is_done({key: unknown}, unit, 0)
    # a setting kmeans does not read may differ without redoing it
    ran_llm = record("bank77", "kmeans", 0, 60.0, options=unit.options)
    ran_llm.config = {**unit.expected_config(), "llm": "another-llm"}
    assert _is_done({key: ran_llm}, unit, 0)

    meta = ReportMeta(tier="t", variants={"default": settings}, methods=("kmeans",), seeds=(0,))
    for r in (ran_now, ran_before):
        r.options = {**r.options, "run_seed": 0}
    ran_before.dataset, ran_before.commit = "goemo", "old1234"
    text = render_markdown([ran_now, ran_before], meta)
    acc = text.split("## ACC (%)")[1].split("## NMI")[0]
    assert "| bank77 | 60.0 |" in acc and "goemo" not in acc
    assert "goemo · kmeans · seed 0 (commit old1234)" in text.split("## Stale cells")[1]


def test_a_setting_written_out_at_the_value_a_run_had_is_no_change(tmp_path):
    """A config that pins a setting the old cells left to its then default (as levers-cpu.toml pins the
    old guard once the default changed): the runs' own configs show the same value, so they stay done
    and reported; a run whose config has another value does not."""
    from coevo.bench.report import is_stale
    from coevo.bench.runner import Unit, Variant, _is_done

    pinned = {"rounds": 2, "guard_consolidation": False}
    unit = Unit("bank77", "full", Variant("default", pinned), 0, (), tmp_path / "run", tmp_path / "bank77.jsonl",
                "intent", 10, 100, 100, "full")
    asked_then = {k: v for k, v in unit.options.items() if k != "guard_consolidation"}  # before the pin
    ran_unpinned = record("bank77", "full", 0, 60.0, options=asked_then)
    ran_unpinned.config = unit.expected_config()
    ran_other = record("bank77", "full", 0, 60.0, options=asked_then)
    ran_other.config = {**unit.expected_config(), "guard_consolidation": True}
    key = ("bank77", "full", "default", 0)
    meta = ReportMeta(tier="t", variants={"default": pinned}, methods=("full",), seeds=(0,))
    assert _is_done({key: ran_unpinned}, unit, 0) and not is_stale(ran_unpinned, meta)
    assert not _is_done({key: ran_other}, unit, 0) and is_stale(ran_other, meta)
    other_sample = record("bank77", "full", 0, 60.0, options={**unit.options, "sample": 50})
    other_sample.config = unit.expected_config()  # same config, but a cell of another sample size
    assert not _is_done({key: other_sample}, unit, 0)


def test_a_field_added_later_whose_default_changed_reads_as_the_runs_before_it_trained(tmp_path):
    """contrastive_batches came after these runs and its default changed then: a stored config (or, in a
    record made before configs were kept, the options) without it ran with no-duplicates batches. A tier
    that pins no-duplicates keeps its cells; one that asks for other batches runs them again."""
    from coevo.bench.report import is_stale
    from coevo.bench.runner import Unit, Variant, _is_done

    pinned = {"rounds": 2, "contrastive_batches": "no-duplicates"}
    unit = Unit("bank77", "full", Variant("default", pinned), 0, (), tmp_path / "run", tmp_path / "bank77.jsonl",
                "intent", 10, 100, 100, "full")
    asked_then = {k: v for k, v in unit.options.items() if k != "contrastive_batches"}
    stored_then = {k: v for k, v in unit.expected_config().items() if k != "contrastive_batches"}
    with_config = record("bank77", "full", 0, 60.0, options=asked_then)
    with_config.config = stored_then
    legacy = record("bank77", "full", 0, 60.0, options=asked_then)  # made before configs were kept
    key = ("bank77", "full", "default", 0)
    meta = ReportMeta(tier="t", variants={"default": pinned}, methods=("full",), seeds=(0,))
    for r in (with_config, legacy):
        assert _is_done({key: r}, unit, 0) and not is_stale(r, meta)
    for other in ({"rounds": 2, "contrastive_batches": "one-per-cluster"}, {"rounds": 2}):
        asked = Unit("bank77", "full", Variant("default", other), 0, (), tmp_path / "run", tmp_path / "bank77.jsonl",
                     "intent", 10, 100, 100, "full")
        # other batches run again; today's default (no-duplicates again) keeps the cells
        assert _is_done({key: with_config}, asked, 0) == ("contrastive_batches" not in other)


def test_a_whole_earlier_version_is_one_line_and_makes_no_column():
    now = {"kmeans_init": 50}
    records = [record("bank77", "kmeans", 0, 60.0, options=now)]
    records += [record("bank77", "expand", s, 50.0 + s, options={"kmeans_init": 5}) for s in range(25)]
    meta = ReportMeta(tier="t", variants={"default": now}, methods=("kmeans",), seeds=(0,))
    text = render_markdown(records, meta)
    assert "| dataset | kmeans |" in text and "expand" not in text.split("## Stale")[0]
    assert "- 25 cells of an earlier version of this tier, kept in the JSON file (commits abc1234;" in text
    assert "Tables give the one seed's result" in text


def test_variant_methods_limit_its_columns(tmp_path, data_dir):
    """A lever measured on one method adds that column only, not the whole grid again."""
    body = GOOD + """
[[variants]]
name = "base"
[[variants]]
name = "gist"
methods = ["full"]
contrastive_loss = "gist"
"""
    config = load_bench_config(write_config(tmp_path, body, data_dir))
    gist = next(v for v in config.variants if v.name == "gist")
    assert gist.methods == ("full",) and gist.settings["contrastive_loss"] == "gist"
    outcome = run_bench(config, dry_run=True, out_dir=tmp_path / "out", log=lambda m: None)
    assert outcome.planned == 2 * 3 + 2 * 3 + 2 * 3  # base: 2 datasets x 2 methods; gist: 2 datasets x full
    text = render_markdown([], ReportMeta.of(config))
    assert "kmeans (gist)" not in text
    bad = write_config(tmp_path, GOOD + '[[variants]]\nname = "x"\nmethods = ["expand"]\n', data_dir, "bad.toml")
    with pytest.raises(CoevoError, match=r"variants\[0\]\.methods.*'expand'"):
        load_bench_config(bad)


# ------------------------------------------------------------------------------------------ end to end


@pytest.mark.slow
def test_smoke_tier_end_to_end_and_resume(tmp_path):
    """The smoke tier on one dataset into a tmp folder; a second invocation runs nothing."""
    if not DATA.is_dir():
        pytest.skip(f"no data folder {DATA}")
    out = tmp_path / "bench"
    cmd = [sys.executable, "-m", "coevo.cli", "bench", str(SMOKE), "--only", "goemo", "--out-dir", str(out)]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "9 cells: 9 run, 0 cached, 0 failed" in first.stdout, first.stdout

    records = json.loads((out / "smoke.json").read_text())
    cells = {(r["dataset"], r["method"], r["variant"], r["seed"]) for r in records}
    assert cells == {("goemo", m, "default", s) for m in ("kmeans", "expand", "full") for s in (0, 1, 2)}
    for r in records:
        assert r["status"] == "ok" and r["n_texts"] == 100 and r["k"] == 27 and r["seed_policy"] == "recluster"
        assert all(0.0 <= r[m] <= 100.0 for m in ("acc", "nmi")) and -100.0 <= r["ari"] <= 100.0
        assert r["wall_s"] > 0 and r["peak_rss_mb"] > 0 and r["embedder"] == "all-MiniLM-L6-v2" and r["commit"]
        assert r["config"]["method"] == r["method"] and r["config"]["n_clusters"] == 27  # the run's own settings
    by = {(r["method"], r["seed"]): r for r in records}
    assert by[("kmeans", 0)]["llm"] is None and by[("full", 0)]["llm"] == "smollm2-135m-instruct"
    assert by[("full", 0)]["rounds"] == 2 and by[("full", 1)]["source"] == "recluster"
    detail = by[("full", 0)]["rounds_detail"]
    assert [d["round"] for d in detail] == [1, 2] and 0 < detail[0]["distinct_pct"] <= 100
    assert detail[0]["interp_only_acc"] is not None
    assert all(d["interp_weight"] in (0.0, 0.5) for d in detail)  # represent gate: the join or the text alone
    cell = out / "smoke" / "default" / "goemo" / "full-seed0"
    assert (cell / "summary.json").is_file()
    # the cell ran from the config file the bench wrote for it, and kept exactly those settings
    assert json.loads((cell / "config.json").read_text()) == json.loads(cell.with_name("full-seed0.config.json").read_text())
    report = (out / "smoke.md").read_text()
    assert "| goemo |" in report and "full beats kmeans on" in report

    started = time.perf_counter()
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "9 cells: 0 run, 9 cached, 0 failed" in second.stdout and time.perf_counter() - started < 60
    assert json.loads((out / "smoke.json").read_text()) == records
