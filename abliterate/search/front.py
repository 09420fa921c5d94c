"""The search's outputs: all trials and the Pareto front as CSV, a plot, and the chosen trial.

Choice rule (``choose_trial``), applied to the Pareto front only, in order:
1. format guard (when the format objective exists): keep trials whose format damage is at most
   the base model's damage + ``damage_tolerance`` (0.1); when none is, keep those with the least
   damage;
2. KL guard: keep trials with mean first-token KL <= ``kl_bound`` (0.1, Arditi's bound); when
   none is, the bound is relaxed to twice the lowest KL among them (the reason says so);
3. the lowest refusal rate wins; ties go to the lower KL, then the lower format damage, then
   the earlier trial.
When the base model's own refusal rate is 0, the refusal objective cannot guide the choice (the
rule still applies, and the reason says so). ``--trial N`` replaces the rule.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from abliterate.errors import AbliterationError
from abliterate.fsio import atomic_path, write_text

TRIALS_CSV = "trials.csv"
PARETO_CSV = "pareto.csv"
PLOT_FILE = "pareto.png"


def trial_row(t, objectives: list[str]) -> dict:
    """One flat row: number, objectives (with counts and CIs), then the raw parameters."""
    row: dict = {"trial": t.number}
    for name, value in zip(objectives, t.values, strict=True):
        row[name] = value
        ci = t.user_attrs.get(f"{name}_ci")
        if ci:
            row[f"{name}_ci_low"], row[f"{name}_ci_high"] = ci
        if f"{name}_k" in t.user_attrs:
            row[f"{name}_k"], row[f"{name}_n"] = t.user_attrs[f"{name}_k"], t.user_attrs[f"{name}_n"]
    row["kl_max"] = t.user_attrs.get("kl_max")
    row["seconds"] = t.user_attrs.get("seconds")
    row["retry_of"] = t.user_attrs.get("retry_of")
    row.update(dict(sorted(t.params.items())))
    return row


def write_rows(path: Path, rows: list[dict]) -> None:
    """Rows as CSV (union of keys, in first-seen order), atomically."""
    fields: list[str] = []
    for r in rows:
        fields += [k for k in r if k not in fields]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields or ["trial"])
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else ("" if v is None else v)) for k, v in r.items()})
    write_text(path, buf.getvalue())


def dominates(a: list[float], b: list[float]) -> bool:
    """True when ``a`` is no worse than ``b`` everywhere and better somewhere (minimisation)."""
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(x < y for x, y in zip(a, b, strict=True))


def choose_trial(front: list[dict], objectives: list[str], base: dict, *, kl_bound: float = 0.1,
                 damage_tolerance: float = 0.1) -> tuple[dict, str]:
    """Apply the module's rule to front rows; returns (chosen row, reason)."""
    if not front:
        raise AbliterationError("the Pareto front is empty: the search has no complete trial yet")
    notes = []
    rows = list(front)
    if "format_damage" in objectives:
        limit = base.get("format_damage", 0.0) + damage_tolerance
        ok = [r for r in rows if r["format_damage"] <= limit + 1e-12]
        if not ok:
            least = min(r["format_damage"] for r in rows)
            ok = [r for r in rows if r["format_damage"] == least]
            notes.append(f"no front trial kept format damage <= base + {damage_tolerance:g}; kept the least damaged")
        rows = ok
    bound = kl_bound
    ok = [r for r in rows if r["kl"] <= bound]
    if not ok:
        bound = 2.0 * min(r["kl"] for r in rows)
        ok = [r for r in rows if r["kl"] <= bound]
        notes.append(f"no remaining trial had KL <= {kl_bound:g}; bound relaxed to 2 x lowest KL = {bound:.4g}")
    best = min(ok, key=lambda r: (r["refusal"], r["kl"], r.get("format_damage", 0.0), r["trial"]))
    reason = f"lowest refusal rate among {len(ok)} Pareto trial(s) with KL <= {bound:.4g}"
    if "format_damage" in objectives:
        reason += f" and format damage <= base + {damage_tolerance:g}"
    if base.get("refusal", 0.0) == 0.0:
        notes.append("the base model's refusal rate is 0, so the refusal objective cannot guide this choice")
    return best, "; ".join([reason, *notes])


def plot_front(path: Path, rows: list[dict], front_ids: set[int], objectives: list[str], chosen: int | None,
               base: dict) -> None:
    """One scatter per pair of objectives: all trials grey, the front coloured, the chosen one starred."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = [(a, b) for i, a in enumerate(objectives) for b in objectives[i + 1:]]
    fig, axes = plt.subplots(1, len(pairs), figsize=(4.2 * len(pairs), 3.8), squeeze=False)
    for ax, (x, y) in zip(axes[0], pairs, strict=True):
        rest = [r for r in rows if r["trial"] not in front_ids]
        front = [r for r in rows if r["trial"] in front_ids]
        ax.scatter([r[x] for r in rest], [r[y] for r in rest], c="lightgrey", s=18, label="trial")
        ax.scatter([r[x] for r in front], [r[y] for r in front], c="tab:blue", s=26, label="Pareto front")
        if x in base and y in base:
            ax.scatter([base[x]], [base[y]], marker="x", c="k", s=40, label="base model")
        for r in rows:
            if r["trial"] == chosen:
                ax.scatter([r[x]], [r[y]], marker="*", c="tab:red", s=160, label=f"chosen (trial {chosen})")
        ax.set_xlabel(x)
        ax.set_ylabel(y)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"abliterate search: {len(rows)} trials, {len(front_ids)} on the front (all minimised)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def finite(x) -> bool:
    """A real, finite number."""
    return isinstance(x, int | float) and math.isfinite(x)
