"""Figures of the behaviour section: metrics per run (box + strip) and per-task paired differences.

Same conventions as :mod:`harness.analysis.plots`: matplotlib's object API on the Agg canvas,
written atomically. One small panel per metric; points are trials (per run) or tasks (paired).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from harness.analysis.behaviour import METRICS
from harness.analysis.figure import COLORS, INK, save_figure

NCOLS = 4
#: the small multiples stay legible at this resolution and keep the HTML report light
DPI = 100


def _jitter(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-0.12, 0.12, n) if n else np.zeros(0)


def _grid(n_panels: int, width: float = 3.0, height: float = 2.3) -> tuple[Figure, list]:
    rows = math.ceil(n_panels / NCOLS)
    fig = Figure(figsize=(NCOLS * width, rows * height + 0.6), layout="constrained")
    axes = fig.subplots(rows, NCOLS, squeeze=False).ravel().tolist()
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, axes[:n_panels]


def _scale(kind: str) -> float:
    return 100.0 if kind in ("rate", "share") else 1.0


def per_run(beh: dict, path: Path) -> Path:
    """Box plot plus jittered trials of every metric, one box per run."""
    runs = beh["runs"]
    fig, axes = _grid(len(METRICS))
    for ax, m in zip(axes, METRICS, strict=True):
        scale = _scale(m.kind)
        data = [[scale * t[m.key] for t in r["per_trial"] if t.get(m.key) is not None] for r in runs]
        xs = list(range(1, len(runs) + 1))
        if any(data):
            ax.boxplot([d if d else [np.nan] for d in data], positions=xs, widths=0.5, showfliers=False,
                       medianprops={"color": INK}, boxprops={"color": "#999999"}, whiskerprops={"color": "#999999"},
                       capprops={"color": "#999999"})
        for i, (x, d) in enumerate(zip(xs, data, strict=True)):
            ax.scatter(x + _jitter(len(d), i), d, s=12, color=COLORS[i % len(COLORS)], zorder=3)
        if scale == 100:
            ax.set_ylim(-5, 105)
        elif any(data):
            top = max(max(d) for d in data if d)
            ax.set_ylim(-0.05 * max(top, 1.0), top * 1.05 if top > 0 else 1.0)
        else:
            ax.text(0.5, 0.5, "no values", transform=ax.transAxes, ha="center", va="center", color="#999999")
        ax.set_xlim(0.4, len(runs) + 0.6)
        ax.set_xticks(xs, [r["name"] for r in runs], fontsize=8)
        unit = " (%)" if scale == 100 else (" (s)" if m.unit == "s" else "")
        ax.set_title(m.label + unit + (" per trial" if m.kind == "rate" else ""), fontsize=9)
        ax.tick_params(axis="y", labelsize=7)
        ax.spines[["top", "right"]].set_visible(False)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("Behaviour per run (points: trials; boxes: quartiles)", fontsize=10)
    return save_figure(fig, path, dpi=DPI)


def paired_differences(beh: dict, pair: dict, path: Path) -> Path:
    """Per-task differences a − b of every metric, with the Wilcoxon p (Holm) in each title."""
    rows = pair["metrics"]
    fig, axes = _grid(len(rows), width=3.0, height=2.0)
    for i, (ax, m) in enumerate(zip(axes, rows, strict=True)):
        scale = _scale(m["kind"])
        diffs = [scale * d for d in m["per_task_diff"].values()]
        ys = _jitter(len(diffs), i)
        ax.axvline(0, color="#999999", lw=1)
        ax.scatter(diffs, ys, s=14, color=INK, zorder=3)
        if diffs:
            ax.plot([float(np.median(diffs))] * 2, [-0.3, 0.3], color=COLORS[1], lw=2, label="median")
            span = max(abs(min(diffs)), abs(max(diffs))) or 1.0
            ax.set_xlim(-1.15 * span, 1.15 * span)
        else:
            ax.text(0.5, 0.5, "no paired task", transform=ax.transAxes, ha="center", va="center", color="#999999")
        ax.set_ylim(-0.5, 0.5)
        ax.set_yticks([])
        unit = " (pp)" if scale == 100 else (" (s)" if m["label"].startswith("seconds") else "")
        pooled = m.get("pooled")
        p = pooled["p"] if pooled else m["wilcoxon_p"]
        test = "perm." if pooled else "Wilcoxon"
        ax.set_title(f"{m['label']}{unit}\n{m['n']} tasks, {test} p = {p:.3g}", fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
        ax.spines[["top", "right", "left"]].set_visible(False)
    fig.suptitle(f"Per-task differences {pair['a']} − {pair['b']} (points: tasks; red: median)", fontsize=10)
    return save_figure(fig, path, dpi=DPI)


def make_behaviour_plots(res: dict, out_dir: Path) -> list[Path]:
    """The behaviour figures for ``res`` (an analysis with a ``behaviour`` section) into ``out_dir``."""
    beh = res.get("behaviour") or {}
    if not beh.get("available"):
        return []
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    made = [per_run(beh, out_dir / "behaviour_runs.png")]
    for pair in beh["pairs"]:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in f"{pair['a']}_vs_{pair['b']}")
        made.append(paired_differences(beh, pair, out_dir / f"behaviour_diff_{safe}.png"))
    return made
