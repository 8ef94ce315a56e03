"""The commit stamp every result carries: dirty only when code differs from the commit."""

import shutil
import subprocess
from pathlib import Path

import pytest

from coevo.provenance import git_commit

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def _git(root, *args):
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)


@pytest.fixture()
def repo(tmp_path):
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "config", "user.email", "t@example.org")
    _git(tmp_path, "config", "user.name", "t")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "code.py").write_text("x = 1\n")
    (tmp_path / "docs" / "results").mkdir(parents=True)
    (tmp_path / "docs" / "results" / "tier.json").write_text("[]\n")
    (tmp_path / "README.md").write_text("readme\n")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-qm", "first")
    return tmp_path


def test_clean_checkout_is_the_short_head(repo):
    stamp = git_commit(repo)
    assert stamp and not stamp.endswith("-dirty")


def test_results_and_prose_being_rewritten_do_not_make_it_dirty(repo):
    (repo / "docs" / "results" / "tier.json").write_text('[{"acc": 1}]\n')
    (repo / "README.md").write_text("changed\n")
    assert not git_commit(repo).endswith("-dirty")


def test_a_code_change_makes_it_dirty(repo):
    (repo / "src" / "code.py").write_text("x = 2\n")
    assert git_commit(repo).endswith("-dirty")


def test_outside_a_checkout_it_says_unknown(tmp_path):
    assert git_commit(tmp_path / "nowhere") == "unknown"


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmRSS (Linux)")
def test_release_freed_memory_hands_freed_heap_back():
    import re

    import numpy as np

    from coevo.provenance import release_freed_memory

    def rss_mb() -> float:
        return int(re.search(r"VmRSS:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) / 1024

    blocks = [np.ones(8000) for _ in range(3000)]  # 64 KB each, under the mmap threshold: heap pages
    last = blocks[-1]  # one live block above the freed ones, so the heap's top cannot simply shrink
    del blocks
    before = rss_mb()
    release_freed_memory()
    assert before - rss_mb() > 100  # of the ~190 MB freed
    assert last.sum() == 8000


@pytest.mark.parametrize("flags, marked", [("fpu avx512f avx512_bf16 sse", True), ("fpu amx_bf16 amx_tile", True),
                                           ("fpu avx512f avx512_vnni", False), ("fpu avx512_bf16x", False)])
def test_machine_line_says_whether_the_cpu_multiplies_bfloat16(monkeypatch, flags, marked):
    """The same CPU name ran the LLM in bfloat16 on one machine and float32 on another, hours apart a cell."""
    import coevo.provenance as provenance
    from coevo.models import preferred_dtype

    files = {"/proc/cpuinfo": f"model name\t: Test CPU\nflags\t\t: {flags}\n", "/proc/meminfo": "MemTotal: 25165824 kB\n"}
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: files[str(self)])
    monkeypatch.setattr(provenance.shutil, "which", lambda name: None)
    assert provenance.machine().startswith("Test CPU (bfloat16), " if marked else "Test CPU, ")
    assert provenance.machine().endswith(", 24 GB RAM")
    torch = pytest.importorskip("torch")
    assert preferred_dtype(torch.device("cpu")) == (torch.bfloat16 if marked else torch.float32)
