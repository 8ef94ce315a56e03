"""Cluster names and keywords, and report.html: written at a run's finish, kept by --resume,
rebuilt by `coevo report`, and rendered by a real (headless) Chromium."""

from __future__ import annotations

import base64
import html
import json
import re
import shutil
from pathlib import Path

import pytest

from coevo import CoEvoConfig, CoEvolution
from coevo.atomic import read_json
from coevo.naming import unique_names
from coevo.prompts import name_instruction, name_request, system_prompt
from coevo.report_html import REPORT, build_report
from tests.test_bad_input import cli

# ------------------------------------------------------------------ names without a model


def test_two_clusters_never_share_a_name():
    names = unique_names(["card lost", "card lost", "card lost", "card lost (stolen)", ""],
                         [["card", "lost"], ["stolen", "card"], ["card", "lost"], [], []], [4, 1, 7, 2, 9])
    # the largest keeps its name; a clash takes its first keyword not in the name, then a number
    assert names == ["card lost", "card lost (stolen)", "card lost 2", "card lost (stolen) 2", "cluster 9"]
    assert len(set(names)) == len(names)


def test_an_answer_that_echoes_the_instructions_is_no_name(monkeypatch):
    """The 0.5B LLM answered the phrase rules ("no sentence") for a third of StackExchange's clusters."""
    from coevo import naming
    from coevo.guards import echoes_prompt

    prompt = system_prompt("topic", name_instruction("topic"))
    assert echoes_prompt("No sentence.", prompt) and echoes_prompt("no explanation", prompt)
    assert not echoes_prompt("sql server backups", prompt) and not echoes_prompt("", prompt)
    monkeypatch.setattr(naming, "llm_names", lambda clusters, config, adapter, progress=False: [
        "no sentence", "sql server backups", "no sentence"])
    clusters = [{"cluster": 0, "names": ["query tuning"], "examples": []},
                {"cluster": 1, "names": ["backups"], "examples": []},
                {"cluster": 2, "names": ["no explanation"], "examples": []}]
    names, sources = naming.name_clusters(clusters, {0: ["index"], 1: ["backup"], 2: ["regex", "perl"]},
                                          CoEvoConfig(n_clusters=3, task="topic"), None)
    assert names == ["query tuning", "sql server backups", "regex, perl"]
    assert sources == ["interpretation", "llm", "keywords"]


def test_the_naming_request_says_what_the_task_groups():
    assert "what the customers of the group want" in name_instruction("intent")
    assert "emotion" in name_instruction("emotion") and "emotion" not in name_instruction("topic")
    request = name_request(["reset link expired", "password reset"], ["My reset   link\nexpired.", "x" * 1000])
    assert request.splitlines() == ["Summaries: reset link expired; password reset", "Examples:",
                                    "- My reset link expired.", "- " + "x" * 300]
    assert system_prompt("intent", name_instruction("intent")).startswith(name_instruction("intent"))


# ------------------------------------------------------------------ names of a finished run


@pytest.mark.slow
def test_a_run_names_its_clusters_everywhere_a_person_looks(full_run):
    summary = read_json(full_run / "summary.json")
    record = read_json(full_run / "round2" / "names.json")
    names = [entry["name"] for entry in summary["clusters"]]
    assert len(names) == 10 and len(set(names)) == 10 and all(names)
    assert all(entry["keywords"] for entry in summary["clusters"])
    assert [entry["name"] for entry in record["clusters"]] == names
    assert {entry["source"] for entry in record["clusters"]} <= {"llm", "interpretation", "keywords"}
    # the LLM named with the adapter the last round generated with (DPO ran in round 1)
    assert record["llm"] == "smollm2-135m-instruct" and record["adapter"] == "round1/adapter"
    stdout = (full_run / "stdout.txt").read_text()
    for entry in summary["clusters"]:
        assert f"({entry['size']} texts)  {entry['name']}" in stdout
        assert f"keywords: {', '.join(entry['keywords'][:6])}" in stdout
    assert f"report: {full_run / REPORT}" in stdout

    model = CoEvolution.load(full_run)
    info = model.cluster_info()
    assert info["name"].tolist() == names
    assert info["keywords"].tolist() == [entry["keywords"] for entry in summary["clusters"]]
    by_cluster = dict(zip(info["cluster"], info["name"]))
    documents = model.document_info()
    assert documents["name"].tolist() == [by_cluster[c] for c in documents["cluster"]]


@pytest.mark.slow
def test_resume_keeps_the_names_and_names_again_when_they_are_lost(full_run, tmp_path, capsys):
    folder = Path(shutil.copytree(full_run, tmp_path / "run"))
    names = folder / "round2" / "names.json"
    before = read_json(names)
    assert cli(capsys, "run", "--resume", str(folder), "-q", "--show", "0")[0] == 0
    assert read_json(names) == before  # the finish ran again and kept them

    names.unlink()  # as when the run was killed while naming
    (folder / "summary.json").unlink()
    code, _, err = cli(capsys, "run", "--resume", str(folder), "-q", "--show", "0")
    assert code == 0, err
    again = read_json(names)
    assert [(c["name"], c["keywords"]) for c in again["clusters"]] == [(c["name"], c["keywords"]) for c in before["clusters"]]

    names.write_text('{"clusters": [')
    code, _, err = cli(capsys, "run", "--resume", str(folder), "-q", "--show", "0")
    assert code == 0 and f"warning: {names}: not valid JSON" in err and "naming the clusters again" in err
    assert read_json(names)["clusters"] == again["clusters"]


@pytest.mark.slow
def test_a_run_without_an_llm_is_named_by_its_keywords(demo_corpus, tmp_path):
    model = CoEvolution(CoEvoConfig(n_clusters=5, method="kmeans", kmeans_init=2), run_dir=tmp_path / "run",
                        progress=False).fit(demo_corpus.texts, demo_corpus.labels)
    for entry in model.clusters_:
        assert entry["name"].startswith(", ".join(entry["keywords"][:3]))
    assert read_json(tmp_path / "run" / "round1" / "names.json")["llm"] is None
    page = build_report(model).read_text(encoding="utf-8")  # nothing per round but the metrics
    assert plots_in(page) == ["map", "sizes", "metrics"] and "central interpretations" not in page


# ------------------------------------------------------------------ report.html


def plots_in(page: str) -> list[str]:
    return re.findall(r'<div id="(\w+)" class="plotly-graph-div"', page)


@pytest.mark.slow
def test_the_report_is_one_file_that_needs_no_network(full_run):
    page = (full_run / REPORT).read_text(encoding="utf-8")
    assert plots_in(page) == ["map", "sizes", "metrics", "guards"]
    assert not re.search(r"<script[^>]+src=", page)  # plotly.js is inlined, not fetched
    assert len(page) > 1_000_000 and "plotly.js v" in page
    table = html.unescape(page[page.index('<table id="T_clusters"'):])
    for entry in read_json(full_run / "summary.json")["clusters"]:
        assert f">{entry['name']}</td>" in table and f">{', '.join(entry['keywords'])}</td>" in table
        assert f">{entry['examples'][0]}<br>" in table


@pytest.mark.slow
def test_coevo_report_rebuilds_it_and_names_a_bad_folder(full_run, tmp_path, capsys):
    folder = Path(shutil.copytree(full_run, tmp_path / "run"))
    (folder / REPORT).unlink()
    code, out, err = cli(capsys, "report", str(folder), "-q")
    assert code == 0, err
    assert out.strip() == f"report: {folder / REPORT}"
    assert plots_in((folder / REPORT).read_text(encoding="utf-8")) == ["map", "sizes", "metrics", "guards"]

    code, _, err = cli(capsys, "report", str(tmp_path / "nowhere"))
    assert code == 2 and err.count("\n") == 1 and err.startswith("coevo: error: ") and "no such run folder" in err
    (folder / "summary.json").unlink()
    code, _, err = cli(capsys, "report", str(folder))
    assert code == 2 and err.count("\n") == 1 and "not finished" in err and f"--resume {folder}" in err


def chromium():
    """A headless Chromium driven through chromedriver; the test skips where either is missing."""
    webdriver = pytest.importorskip("selenium.webdriver")
    binary = next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome") if shutil.which(name)), None)
    driver = shutil.which("chromedriver")
    if binary is None or driver is None:
        pytest.skip("no Chromium and chromedriver here (scripts/test.sh installs them when it runs as root with apt)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(flag)
    return webdriver.Chrome(service=webdriver.ChromeService(executable_path=driver), options=options)


RENDERED = """return Array.from(document.querySelectorAll('.js-plotly-plot'))
    .filter(plot => plot.querySelector('.main-svg')).map(plot => plot.id)"""


@pytest.mark.slow
def test_the_report_renders_in_a_real_browser_offline(full_run):
    from selenium.webdriver.support.ui import WebDriverWait

    browser = chromium()
    try:
        browser.set_network_conditions(offline=True, latency=0, download_throughput=0, upload_throughput=0)
        browser.get((full_run / REPORT).resolve().as_uri())
        WebDriverWait(browser, 60).until(lambda b: len(b.execute_script(RENDERED)) == 4)
        assert browser.execute_script(RENDERED) == ["map", "sizes", "metrics", "guards"]
        summary = read_json(full_run / "summary.json")
        # one map trace per cluster, one point per text; one bar per cluster
        assert browser.execute_script("return document.getElementById('map').data.length") == 10
        assert browser.execute_script("return document.querySelectorAll('#map .scatterlayer .point').length") == 40
        assert browser.execute_script("return document.querySelectorAll('#sizes .bars .point').length") == 10
        legend = browser.execute_script("return document.querySelector('#map .legend').textContent")
        assert all(f"{entry['cluster']}: {entry['name']}" in legend for entry in summary["clusters"])
        assert browser.execute_script("return document.querySelectorAll('#metrics .scatterlayer .trace').length") >= 3
        table = browser.execute_script("return document.querySelector('table.clusters').innerText")
        assert all(entry["name"] in table and entry["examples"][0] in table for entry in summary["clusters"])
        size = browser.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
        shot = browser.execute_cdp_cmd("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}})
    finally:
        browser.quit()
    png = base64.b64decode(shot["data"])
    assert png.startswith(b"\x89PNG") and len(png) > 50_000
    (full_run / "report.png").write_bytes(png)
    print(json.dumps({"screenshot": str(full_run / "report.png")}))
