"""One source for every setting: each ``CoEvoConfig`` field is a ``coevo run`` option and a bench setting with
the field's own default and help, and the stages' settings take their defaults from it. Fails on drift."""

from __future__ import annotations

import dataclasses

import click
import pytest
import typer.main

from coevo.bench import SETTINGS
from coevo.cli import app
from coevo.config import CoEvoConfig
from coevo.contrastive import ContrastiveSettings
from coevo.errors import CoevoError
from coevo.generation import SamplingConfig
from coevo.preference import DPOSettings

FIELDS = [f for f in dataclasses.fields(CoEvoConfig) if f.name != "n_clusters"]


def _run_options() -> dict[str, click.Parameter]:
    command = typer.main.get_command(app)
    return {p.name: p for p in command.commands["run"].params}


@pytest.mark.parametrize("f", FIELDS, ids=lambda f: f.name)
def test_every_field_is_a_run_option_with_its_default_and_help(f):
    option = _run_options().get(f.name)
    assert option is not None, f"CoEvoConfig.{f.name} has no `coevo run --{f.name.replace('_', '-')}` option"
    assert option.default == f.default, f"--{f.name}: default {option.default!r}, CoEvoConfig says {f.default!r}"
    assert option.help == f.metadata["help"] and f.metadata["help"].strip()


def test_every_field_but_the_cells_own_is_a_bench_setting():
    assert set(SETTINGS) == {f.name for f in FIELDS} - {"task", "method", "seed"}


@pytest.mark.parametrize("stage, names", [
    (SamplingConfig, {"samples": "samples", "temperature": "temperature", "top_p": "top_p",
                      "max_new_tokens": "max_new_tokens", "batch_size": "generation_batch_size", "seed": "seed"}),
    (DPOSettings, {"learning_rate": "dpo_learning_rate", "beta": "dpo_beta", "sft_weight": "dpo_sft_weight",
                   "batch_size": "dpo_batch_size", "epochs": "dpo_epochs", "lora_r": "lora_r", "lora_alpha": "lora_alpha"}),
    (ContrastiveSettings, {"batch_size": "contrastive_batch_size", "learning_rate": "contrastive_learning_rate",
                           "epochs": "contrastive_epochs", "loss": "contrastive_loss", "seed": "seed",
                           "batches": "contrastive_batches"}),
])
def test_stage_settings_default_to_the_config(stage, names):
    defaults = stage()
    for own, field_name in names.items():
        assert getattr(defaults, own) == getattr(CoEvoConfig, field_name), f"{stage.__name__}.{own}"


@pytest.mark.parametrize("name, value", [("lora_r", 0), ("dpo_batch_size", 0), ("tau", 0.0), ("contrastive_epochs", -1.0),
                                         ("generation_batch_size", 0)])
def test_newly_reachable_settings_are_checked(name, value):
    with pytest.raises(CoevoError, match=f"--{name.replace('_', '-')}"):
        CoEvoConfig(n_clusters=3, **{name: value})


def test_a_stored_config_without_a_later_field_reads_as_the_run_trained_not_as_todays_default():
    stored = CoEvoConfig(n_clusters=3).to_dict()
    del stored["contrastive_batches"]  # a run folder written before the field existed
    assert CoEvoConfig.from_dict(stored).contrastive_batches == "no-duplicates"
    kept = {**stored, "contrastive_batches": "one-per-cluster"}
    assert CoEvoConfig.from_dict(kept).contrastive_batches == "one-per-cluster"
