"""Figures for an analysis: pass rates, UpSet-style overlap, Venn (2-3 runs), tasks x runs heat map.

Drawn with matplotlib's object API on the Agg canvas (no pyplot state, no display needed).
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from harness.analysis.behaviour_plots import make_behaviour_plots
from harness.analysis.figure import COLORS, DOT_OFF, INK, save_figure


def pass_rates(res: dict, path: Path) -> Path:
    """Per-run solve rate with its Wilson 95% interval (and mean pass@1 when runs have several attempts)."""
    runs = res["runs"]
    fig = Figure(figsize=(7, 1.2 + 0.55 * len(runs)))
    ax = fig.add_subplot()
    ys = list(range(len(runs)))[::-1]
    top = max(max(r["wilson95"][1], r["mean_pass_at_1"] + (r.get("ci95_fixed_tasks") or 0.0)) for r in runs)
    for y, r, color in zip(ys, runs, COLORS * 8, strict=False):
        lo, hi = r["wilson95"]
        ax.errorbar(100 * r["rate"], y, xerr=[[100 * max(0.0, r["rate"] - lo)], [100 * max(0.0, hi - r["rate"])]], fmt="o",
                    color=color, capsize=4, ms=7, lw=1.6)
        ax.annotate(f"{r['passes']}/{r['n']}  ({100 * r['rate']:.1f}%)", (100 * hi, y), xytext=(6, 0),
                    textcoords="offset points", va="center", fontsize=9, color=INK)
        if res["multi_attempt"]:
            hw = r.get("ci95_fixed_tasks") or 0.0
            ax.errorbar(100 * r["mean_pass_at_1"], y - 0.25, xerr=100 * hw, fmt="D", ms=5, color=color, alpha=0.55,
                        capsize=2, lw=1)
    ax.set_yticks(ys, [r["name"] for r in runs])
    ax.set_ylim(-0.7, len(runs) - 0.3)
    right = min(100.0, 100 * top * 1.35 + 3)
    ax.set_xlim(-0.02 * right, right)  # a little room so a 0% dot is not cut by the axis
    ax.set_xlabel("tasks solved (%)")
    ax.set_title(f"Pass rate on {res['n_tasks']} shared tasks", fontsize=10)
    if res["multi_attempt"]:
        from matplotlib.lines import Line2D

        handles = [Line2D([], [], marker="o", color=INK, lw=1.2,
                          label=f"solved ({res['solved_rule']} rule), Wilson 95%"),
                   Line2D([], [], marker="D", color=INK, alpha=0.55, lw=1,
                          label="mean pass@1 over all trials, 95% (fixed tasks)")]
        ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.28), ncol=2, fontsize=8,
                  frameon=False)
    else:
        ax.set_xlabel("tasks solved (%)  —  bars: Wilson 95% interval")
    ax.grid(axis="x", alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)
    return save_figure(fig, path)


def upset(res: dict, path: Path, *, show_empty_up_to: int = 4) -> Path:
    """UpSet-style plot: one column per exclusive region (empty ones too for up to 4 runs)."""
    names = [r["name"] for r in res["runs"]]
    k = len(names)
    regions = [o for o in res["overlap"] if o["tasks"] or k <= show_empty_up_to]
    regions.sort(key=lambda o: (-len(o["tasks"]), len(o["runs"])))
    ncol = max(len(regions), 1)
    name_w = 0.25 + 0.085 * max(len(n) for n in names)  # inches for the run-name column
    widths = [1.3, name_w, max(2.8, 0.55 * ncol)]
    fig = Figure(figsize=(sum(widths) + 0.4, 2.8 + 0.38 * k))
    gs = fig.add_gridspec(2, 3, width_ratios=widths, height_ratios=[2.4, 0.3 + 0.38 * k], wspace=0.0,
                          hspace=0.05)
    bars = fig.add_subplot(gs[0, 2])
    matrix = fig.add_subplot(gs[1, 2], sharex=bars)
    sizes = fig.add_subplot(gs[1, 0], sharey=matrix)
    xs = list(range(len(regions)))
    counts = [len(o["tasks"]) for o in regions]
    bars.bar(xs, counts, color=INK, width=0.6)
    for x, c in zip(xs, counts, strict=True):
        bars.annotate(str(c), (x, c), xytext=(0, 2), textcoords="offset points", ha="center", fontsize=8)
    bars.set_ylabel("tasks solved by\nexactly these runs", fontsize=8)
    bars.set_ylim(0, max(counts + [1]) * 1.2)
    bars.yaxis.set_major_locator(MaxNLocator(integer=True))
    bars.spines[["top", "right", "bottom"]].set_visible(False)
    bars.tick_params(axis="x", bottom=False, labelbottom=False)
    hidden = len(res["overlap"]) - len(regions)
    title = f"Overlap of solved tasks\n{res['n_tasks']} tasks, {res['unsolved_by_all']} solved by none"
    if hidden:
        title += f"; {hidden} empty regions not drawn"
    bars.set_title(title, fontsize=10)
    rows = {n: k - 1 - i for i, n in enumerate(names)}
    for x, o in enumerate(regions):
        inside = [rows[n] for n in o["runs"]]
        matrix.scatter([x] * k, list(rows.values()), s=60, color=DOT_OFF, zorder=1)
        matrix.scatter([x] * len(inside), inside, s=60, color=INK, zorder=2)
        if len(inside) > 1:
            matrix.plot([x, x], [min(inside), max(inside)], color=INK, lw=2, zorder=2)
    for i in range(k):
        if i % 2 == 0:
            matrix.axhspan(i - 0.5, i + 0.5, color="#f4f4f4", zorder=0)
    matrix.set_xlim(-0.6, ncol - 0.4)
    matrix.set_ylim(-0.5, k - 0.5)
    matrix.tick_params(axis="both", left=False, bottom=False, labelleft=False, labelbottom=False)
    for side in ("top", "right", "bottom", "left"):
        matrix.spines[side].set_visible(False)
    solved = {r["name"]: r["passes"] for r in res["runs"]}
    ys = [rows[n] for n in names]
    sizes.barh(ys, [solved[n] for n in names], color=[COLORS[i % len(COLORS)] for i in range(k)], height=0.55)
    for n, y in zip(names, [rows[n] for n in names], strict=True):
        sizes.annotate(str(solved[n]), (solved[n], y), xytext=(-3, 0), textcoords="offset points", ha="right",
                       va="center", fontsize=8)
    sizes.set_xlim(max(list(solved.values()) + [1]) * 1.35, 0)
    sizes.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=3))
    sizes.tick_params(axis="y", left=False, labelleft=False)
    label_ax = fig.add_subplot(gs[1, 1], sharey=matrix)
    label_ax.axis("off")
    for n, y in zip(names, ys, strict=True):
        label_ax.text(0.5, y, n, ha="center", va="center", fontsize=9)
    sizes.set_xlabel("solved", fontsize=8)
    sizes.spines[["top", "left", "right"]].set_visible(False)
    return save_figure(fig, path)


def venn(res: dict, path: Path) -> Path | None:
    """Venn diagram of solved-task sets for 2 or 3 runs (None otherwise), with counts and short name lists."""
    from matplotlib_venn import venn2, venn3

    names = [r["name"] for r in res["runs"]]
    if len(names) not in (2, 3):
        return None
    by_runs = {tuple(o["runs"]): o["tasks"] for o in res["overlap"]}
    # matplotlib-venn subset ids are membership bit strings: "10" = first only, "011" = 2nd and 3rd, ...
    ids = [format(i, f"0{len(names)}b") for i in range(1, 2 ** len(names))]
    fig = Figure(figsize=(7.5, 6))
    ax = fig.add_subplot()
    subsets = {}
    for sid in ids:
        members = tuple(n for n, bit in zip(names, sid, strict=True) if bit == "1")
        subsets[sid] = by_runs.get(members, [])
    sizes = {sid: max(len(t), 1) for sid, t in subsets.items()}  # area 1 keeps empty regions drawable
    draw = venn2 if len(names) == 2 else venn3
    diagram = draw(subsets=sizes, set_labels=names, ax=ax, set_colors=COLORS[: len(names)], alpha=0.35)
    for sid, tasks in subsets.items():
        label = diagram.get_label_by_id(sid)
        if label is None:
            continue
        text = str(len(tasks))
        if 0 < len(tasks) <= 5:
            text += "\n" + "\n".join(tasks)
        elif len(tasks) > 5:
            text += "\n" + "\n".join(tasks[:4]) + f"\n+{len(tasks) - 4} more"
        label.set_text(text)
        label.set_fontsize(7 if len(tasks) else 9)
    ax.set_title(f"Solved tasks (areas not to scale; {res['unsolved_by_all']} of {res['n_tasks']} solved by none)",
                 fontsize=10)
    return save_figure(fig, path)


def heatmap(res: dict, path: Path) -> Path | None:
    """Tasks x runs per-task pass rates over all attempts; tasks at 0 in every run are left out."""
    runs = res["runs"]
    rates = {r["name"]: r["per_task_rate"] for r in runs}
    tasks = sorted(runs[0]["per_task_rate"], key=lambda t: (-sum(rates[n][t] for n in rates), t))
    shown = [t for t in tasks if any(rates[n][t] > 0 for n in rates)]
    if not shown:
        return None
    grid = [[rates[r["name"]][t] for r in runs] for t in shown]
    fig = Figure(figsize=(2.8 + 1.0 * len(runs), 1.6 + 0.24 * len(shown)))
    ax = fig.add_subplot()
    im = ax.imshow(grid, cmap="Greens", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(runs)), [r["name"] for r in runs])
    ax.xaxis.tick_top()
    ax.set_yticks(range(len(shown)), shown, fontsize=8)
    for i, row in enumerate(grid):
        for j, v in enumerate(row):
            ax.text(j, i, f"{v:.2f}".rstrip("0").rstrip(".") if v else "0", ha="center", va="center",
                    fontsize=7, color="white" if v > 0.6 else INK)
    hidden = len(tasks) - len(shown)
    note = f"; {hidden} tasks at 0 in every run not shown" if hidden else ""
    ax.set_title(f"Per-task pass rate over all attempts{note}", fontsize=9, pad=30)
    fig.colorbar(im, ax=ax, fraction=0.05, pad=0.04, label="pass rate")
    return save_figure(fig, path)


def make_plots(res: dict, out_dir: Path) -> list[Path]:
    """Draw every figure that applies to ``res`` into ``out_dir``; returns the files written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    made = [pass_rates(res, out_dir / "pass_rates.png")]
    if len(res["runs"]) >= 2:
        made.append(upset(res, out_dir / "overlap_upset.png"))
        v = venn(res, out_dir / "overlap_venn.png")
        if v:
            made.append(v)
    if res["multi_attempt"]:
        h = heatmap(res, out_dir / "task_heatmap.png")
        if h:
            made.append(h)
    made += make_behaviour_plots(res, out_dir)
    return made
