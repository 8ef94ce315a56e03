"""``report.html``: a finished run as one page a person can open anywhere, offline.

People look at clusters before they read them: a map of the texts coloured by
cluster (hover for the text, its cluster's name and its interpretations), the
cluster sizes with their names, the curve K was chosen by (``-k auto``), per-round quality (ACC/NMI/ARI and
interpretation-only ACC when there are gold labels) and the guard figures, and
each cluster's name, keywords and central texts. The charts are plotly's, with
plotly.js written into the page, so the file needs no network; the cluster table
is pandas'.

The map is t-SNE (scikit-learn) of the representation the final round clustered,
rebuilt from the run folder as ``recluster`` and ``predict`` rebuild it, after a
PCA to at most 50 dimensions. At most ``MAP_POINTS`` texts are drawn (a seeded
sample): more would make t-SNE slow and the page heavy without showing more.
"""

from __future__ import annotations

import html
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from plotly.colors import qualitative

from .atomic import atomic_write_text
from .export import cluster_keywords, cluster_names

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from .pipeline import CoEvolution

REPORT = "report.html"
MAP_POINTS = 3000
HOVER_CHARS = 300
PALETTE = [*qualitative.Dark24, *qualitative.Light24]
"""48 distinct colours, in cluster order (largest first), shared by the map and the bars."""


def write_report(run_dir: str | Path, *, progress: bool = False) -> Path:
    """Rebuild ``report.html`` of a finished run folder (``coevo report``)."""
    from .pipeline import CoEvolution

    return build_report(CoEvolution.load(run_dir, progress=progress))


def build_report(model: CoEvolution) -> Path:
    """Write ``report.html`` into the run folder of a fitted (or loaded) run; returns its path."""
    names = cluster_names(model)
    keywords = cluster_keywords(model)
    figures = {"map": _map(model, names), "sizes": _sizes(model, names)}
    if model.summary_.get("auto_k"):
        figures["auto_k"] = _auto_k(model.summary_["auto_k"])
    rounds = model.history_
    if any(row.get("metrics") for row in rounds):
        figures["metrics"] = _per_round(rounds, "Quality per round (against the gold labels)", {
            "ACC": lambda row: (row.get("metrics") or {}).get("acc"),
            "NMI": lambda row: (row.get("metrics") or {}).get("nmi"),
            "ARI": lambda row: (row.get("metrics") or {}).get("ari"),
            "interpretation-only ACC": lambda row: (row.get("interp_only") or {}).get("acc"),
        }, "%")
    if any(row.get("guards") for row in rounds):
        figures["guards"] = _per_round(rounds, "Guard figures per round (is an interpretation still one?)", {
            "distinct answers": lambda row: _percent((row.get("guards") or {}).get("distinct_share")),
            "copies of the text": lambda row: _percent((row.get("guards") or {}).get("copy_rate")),
            "repeats of the instructions": lambda row: _percent((row.get("guards") or {}).get("leak_rate")),
        }, "% of interpretations")
    charts = []
    for number, (key, figure) in enumerate(figures.items()):
        charts.append(figure.to_html(full_html=False, include_plotlyjs=number == 0, div_id=key,
                                     config={"responsive": True, "displaylogo": False}))
    page = _page(model, charts, _cluster_table(model, names, keywords))
    return atomic_write_text(model.run_dir_ / REPORT, page)


def map_coordinates(z: np.ndarray, seed: int) -> np.ndarray:
    """2-D t-SNE coordinates of the rows of ``z`` (PCA to at most 50 dimensions first), seeded."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    z = np.asarray(z, dtype=np.float64)
    reduced = PCA(n_components=min(50, *z.shape), random_state=seed).fit_transform(z)
    perplexity = min(30.0, max(1.0, (len(z) - 1) / 3))  # t-SNE needs fewer neighbours than points
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(reduced)


def _map(model: CoEvolution, names: dict[int, str]) -> go.Figure:
    import pandas as pd
    import plotly.express as px

    rep = model.context_.representation(model.config.effective_rounds)
    z, weight = rep.z, rep.weight
    shown = np.arange(len(z))
    if len(z) > MAP_POINTS:
        shown = np.sort(np.random.default_rng(model.config.seed).choice(len(z), MAP_POINTS, replace=False))
    xy = map_coordinates(z[shown], model.config.seed)
    labels = np.asarray(model.labels_)[shown]
    frame = pd.DataFrame({
        "x": xy[:, 0], "y": xy[:, 1],
        "cluster": [_label(int(c), names) for c in labels],
        "text": [_hover(model.texts_[i]) for i in shown],
        "interpretations": [_hover("; ".join(model.interpretations_[i])) if model.interpretations_[i] else "-"
                            for i in shown],
    })
    order = [_label(int(entry["cluster"]), names) for entry in model.clusters_]
    what = ("f(x)" if not weight.get("interp_weight") else
            f"f(x) joined with {weight['interp_weight']:g} x mean f(y)"
            + (", each text's weight scaled by its answers' agreement" if "mean_agreement" in weight else ""))
    sample = f"{len(shown)} of {len(z)} texts" if len(shown) < len(z) else f"{len(z)} texts"
    figure = px.scatter(frame, x="x", y="y", color="cluster", category_orders={"cluster": order},
                        custom_data=["cluster", "text", "interpretations"],
                        color_discrete_sequence=PALETTE,
                        title=f"Map of the texts: t-SNE of the final representation, {what} ({sample})")
    figure.update_traces(marker={"size": 7, "opacity": 0.8}, hovertemplate=(
        "<b>%{customdata[0]}</b><br>%{customdata[1]}<br><i>interpretations:</i> %{customdata[2]}<extra></extra>"))
    figure.update_xaxes(visible=False)
    figure.update_yaxes(visible=False)
    figure.update_layout(height=650, legend_title_text="cluster", template="plotly_white")
    return figure


def _sizes(model: CoEvolution, names: dict[int, str]) -> go.Figure:
    import plotly.express as px

    clusters = model.clusters_  # largest first
    labels = [_label(int(entry["cluster"]), names) for entry in clusters]
    figure = px.bar(x=[int(entry["size"]) for entry in clusters], y=labels, color=labels, orientation="h",
                    category_orders={"color": labels}, color_discrete_sequence=PALETTE,  # the map's colours
                    title="Cluster sizes", labels={"x": "texts", "y": ""})
    figure.update_yaxes(autorange="reversed", dtick=1)  # every bar labelled
    figure.update_layout(height=max(320, 120 + 26 * len(clusters)), showlegend=False, template="plotly_white")
    return figure


def _auto_k(choice: dict) -> go.Figure:
    """The label-free score of each K the run tried, with the K it chose marked (``-k auto``)."""
    import plotly.graph_objects as go

    ks = [k for k, _ in choice["curve"]]
    scores = [score for _, score in choice["curve"]]
    chosen = dict(choice["curve"]).get(choice["k"])
    figure = go.Figure(go.Scatter(x=ks, y=scores, mode="lines+markers", name=choice["criterion"]))
    if chosen is not None:
        figure.add_trace(go.Scatter(x=[choice["k"]], y=[chosen], mode="markers", name=f"chosen K = {choice['k']}",
                                    marker={"size": 16, "symbol": "star", "color": "crimson"}))
    figure.add_vline(x=choice["k"], line_dash="dot", line_color="crimson")
    figure.update_layout(title=(f"K chosen without labels: {choice['k']}, the highest {choice['criterion']} of "
                                f"KMeans on the base embedder's f(x) ({choice['texts']} texts)"),
                         xaxis={"title": "K (log scale)", "type": "log"}, yaxis={"title": choice["criterion"]},
                         height=380, template="plotly_white")
    return figure


def _per_round(rounds: list[dict], title: str, series: dict, unit: str) -> go.Figure:
    import plotly.graph_objects as go

    figure = go.Figure()
    x = [row["round"] for row in rounds]
    for name, read in series.items():
        y = [read(row) for row in rounds]
        if any(v is not None for v in y):
            figure.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name=name))
    figure.update_layout(title=title, xaxis={"title": "round", "dtick": 1}, yaxis={"title": unit, "rangemode": "tozero"},
                         height=380, template="plotly_white")
    return figure


def _cluster_table(model: CoEvolution, names: dict[int, str], keywords: dict[int, list[str]]) -> str:
    import pandas as pd

    frame = pd.DataFrame([{
        "cluster": int(entry["cluster"]), "size": int(entry["size"]), "name": names[int(entry["cluster"])],
        "keywords": ", ".join(keywords.get(int(entry["cluster"]), [])),
        "central interpretations": "\n".join(entry["names"]),
        "central texts": "\n".join(entry["examples"]),
    } for entry in model.clusters_])
    if not any(entry["names"] for entry in model.clusters_):
        frame = frame.drop(columns="central interpretations")
    # Styler escapes each cell before the formatter runs, so only the line breaks become markup
    styler = frame.style.hide(axis="index").format(lambda value: str(value).replace("\n", "<br>"), escape="html")
    return styler.set_table_attributes('class="clusters"').set_uuid("clusters").to_html()


def _page(model: CoEvolution, charts: list[str], table: str) -> str:
    cfg, summary = model.config, model.summary_
    clusters = f"{len(model.clusters_)} clusters" + (" (K chosen without labels)" if summary.get("auto_k") else "")
    facts = [f"{summary['n_texts']} texts", clusters, f"method {cfg.method}",
             f"task {cfg.task}", f"embedder {cfg.embedder}"]
    if cfg.uses_llm:
        facts.append(f"LLM {cfg.llm}")
    facts.append(f"{cfg.effective_rounds} round{'s' if cfg.effective_rounds > 1 else ''}, seed {cfg.seed}")
    metrics = summary.get("metrics")
    if metrics:
        facts.append(f"ACC {metrics['acc']:.1f}  NMI {metrics['nmi']:.1f}  ARI {metrics['ari']:.1f}")
    named = ("written by the run's final LLM where it gave a short usable answer, else the most central "
             "interpretation or the keywords (names.json says which)") if cfg.uses_llm else \
        "the strongest keywords (a run without an LLM)"
    title = html.escape(f"coevo report: {model.run_dir_.name}")
    body = "\n".join(f'<section class="chart">{chart}</section>' for chart in charts)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1200px; color: #222; }}
p.facts {{ color: #555; }}
table.clusters {{ border-collapse: collapse; font-size: 0.9em; }}
table.clusters th, table.clusters td {{ border-bottom: 1px solid #ddd; padding: 0.4em 0.6em; text-align: left;
  vertical-align: top; }}
</style>
</head>
<body>
<h1>{title}</h1>
<p class="facts">{html.escape(" · ".join(facts))}</p>
{body}
<h2>Clusters</h2>
<p>Largest first. Names are {html.escape(named)}; keywords are class-based TF-IDF over the cluster's texts;
central texts and interpretations are those nearest the cluster's centre.</p>
{table}
</body>
</html>
"""


def _label(cluster: int, names: dict[int, str]) -> str:
    """A cluster in a legend, an axis or a hover box (plotly reads a subset of HTML there)."""
    return html.escape(f"{cluster}: {names[cluster]}", quote=False)


def _hover(text: str) -> str:
    """Short, wrapped and escaped: plotly reads a subset of HTML in hover text."""
    short = text if len(text) <= HOVER_CHARS else text[: HOVER_CHARS - 1] + "…"
    return "<br>".join(html.escape(line, quote=False) for line in textwrap.wrap(short, 80)) or "-"


def _percent(x) -> float | None:
    return 100 * x if isinstance(x, (int, float)) else None
