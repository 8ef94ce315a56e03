"""The commit stamp every result carries: dirty only when code differs from the commit."""

import shutil
import subprocess

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
