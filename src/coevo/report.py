"""What a person reads at the end: each cluster's size, its most central
interpretations (a readable name for the cluster) and a few example texts."""

from __future__ import annotations

from collections import Counter

import numpy as np

from .clustering import normalize


def describe_clusters(
    texts: list[str],
    assignments: np.ndarray,
    text_vectors: np.ndarray,
    interpretations: list[list[str]] | None = None,
    interp_vectors: np.ndarray | None = None,
    interp_owner: np.ndarray | None = None,
    *,
    n_examples: int = 3,
    n_names: int = 3,
) -> list[dict]:
    """Clusters by decreasing size; examples and names are those nearest the cluster's centre."""
    out = []
    for cluster, size in Counter(assignments.tolist()).most_common():
        members = np.flatnonzero(assignments == cluster)
        centre = normalize(text_vectors[members].mean(axis=0))
        nearest = members[np.argsort(-(text_vectors[members] @ centre))]
        entry = {"cluster": int(cluster), "size": int(size), "examples": [texts[i] for i in nearest[:n_examples]], "names": []}
        if interpretations is not None and interp_vectors is not None and interp_owner is not None and len(interp_owner):
            rows = np.flatnonzero(np.isin(interp_owner, members))
            if len(rows):
                flat = [y for ys in interpretations for y in ys]
                mean = normalize(interp_vectors[rows].mean(axis=0))
                names: list[str] = []
                for r in rows[np.argsort(-(interp_vectors[rows] @ mean))]:
                    if flat[r] not in names:
                        names.append(flat[r])
                    if len(names) == n_names:
                        break
                entry["names"] = names
        out.append(entry)
    return out


def format_clusters(clusters: list[dict], limit: int | None = None) -> str:
    """Each cluster's name (for a run finished before names were written: its central
    interpretations), its keywords and its central texts."""
    lines = []
    for entry in clusters[:limit]:
        name = entry.get("name") or " | ".join(entry["names"])
        lines.append(f"cluster {entry['cluster']:>3}  ({entry['size']} texts)  {name}".rstrip())
        if entry.get("keywords"):
            lines.append(f"    keywords: {', '.join(entry['keywords'][:6])}")
        for example in entry["examples"]:
            lines.append(f"    - {example[:110]}")
    if limit is not None and len(clusters) > limit:
        lines.append(f"... and {len(clusters) - limit} more clusters (see assignments.jsonl)")
    return "\n".join(lines)


def format_metrics(rows: list[dict]) -> str:
    """A small table of per-round metrics (ACC/NMI/ARI in percent)."""
    lines = ["round  ACC    NMI    ARI    interp-only ACC  distinct  copy   leak"]
    for row in rows:
        m, g = row.get("metrics") or {}, row.get("guards") or {}
        io = row.get("interp_only") or {}
        lines.append(
            f"{row['round']:>5}  {_f(m.get('acc'))}  {_f(m.get('nmi'))}  {_f(m.get('ari'))}  "
            f"{_f(io.get('acc')):>15}  {_p(g.get('distinct_share')):>8}  {_p(g.get('copy_rate')):>5}  {_p(g.get('leak_rate')):>5}"
        )
    return "\n".join(lines)


def _f(x) -> str:
    return f"{x:5.1f}" if isinstance(x, (int, float)) else "    -"


def _p(x) -> str:
    return f"{100 * x:.0f}%" if isinstance(x, (int, float)) else "-"
