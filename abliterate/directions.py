"""Per-layer refusal directions from captured means, with eval-split diagnostics.

``r_l = normalize(mean_refuse_l - mean_comply_l)`` over the TRAIN split; the "projected"
variant also removes r's component along the normalized comply mean. Diagnostics use the
EVAL split's activations: AUC of the projections onto r_l (Mann-Whitney U / (n1 n2), from
scipy's rank statistics), separation (difference of projection means over the pooled std),
the raw norm of the mean difference, and cosine to the neighbouring layers.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from abliterate.capture import META_FILE, load_activations, load_means
from abliterate.errors import AbliterationError
from abliterate.fsio import atomic_path, write_text
from abliterate.options import DirectionsOptions as DirectionsOptions  # re-exported: the step's own options

DIRS_FILE = "refusal_dirs.safetensors"
DIR_FILE = "refusal_dir.pt"
RANKING_FILE = "refusal_ranking.csv"
PLOT_FILE = "refusal_layers.png"
VARIANTS = ("diff", "projected")


def unit_rows(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row-normalized copy of ``m`` and the row norms (zero rows stay zero)."""
    norms = np.linalg.norm(m, axis=-1)
    safe = np.where(norms > 0, norms, 1.0)
    return m / safe[:, None], norms


def compute_directions(mean_refuse: np.ndarray, mean_comply: np.ndarray) -> dict[str, np.ndarray]:
    """Both variants, [L, d] float64, plus the raw difference norms [L]."""
    diff = mean_refuse - mean_comply
    r, norms = unit_rows(diff)
    c_hat, _ = unit_rows(mean_comply)
    projected = r - np.sum(r * c_hat, axis=-1, keepdims=True) * c_hat
    projected, _ = unit_rows(projected)
    return {"diff": r, "projected": projected, "norm": norms}


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(pos > neg) (ties count half), via the Mann-Whitney U statistic."""
    from scipy.stats import mannwhitneyu

    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    u = mannwhitneyu(pos, neg, alternative="two-sided").statistic
    return float(u) / (len(pos) * len(neg))


def separation(pos: np.ndarray, neg: np.ndarray) -> float:
    """(mean(pos) - mean(neg)) / pooled standard deviation (Cohen's d)."""
    if len(pos) < 2 or len(neg) < 2:
        return float("nan")
    pooled = np.sqrt((np.var(pos, ddof=1) * (len(pos) - 1) + np.var(neg, ddof=1) * (len(neg) - 1))
                     / (len(pos) + len(neg) - 2))
    return float((pos.mean() - neg.mean()) / pooled) if pooled > 0 else float("inf")


def _eval_rows(act_dir: Path, bucket: str, meta: dict, split: str) -> np.ndarray:
    """Indices of a bucket's records in ``split``."""
    splits = meta["buckets"][bucket]["splits"]
    return np.array([i for i, s in enumerate(splits) if s == split], dtype=int)


def diagnostics(act_dir: Path, dirs: dict[str, np.ndarray], meta: dict) -> tuple[list[dict], str]:
    """Per-layer rows of diagnostics on the eval split (the train split when eval is empty)."""
    refuse, comply = load_activations(act_dir, "refuse"), load_activations(act_dir, "comply")
    split = "eval"
    ir, ic = _eval_rows(act_dir, "refuse", meta, "eval"), _eval_rows(act_dir, "comply", meta, "eval")
    if len(ir) == 0 or len(ic) == 0:
        split = "train (eval split empty: optimistic)"
        ir, ic = _eval_rows(act_dir, "refuse", meta, "train"), _eval_rows(act_dir, "comply", meta, "train")
    n_layers = dirs["diff"].shape[0]
    rows = []
    for k in range(n_layers):
        r, rp = dirs["diff"][k], dirs["projected"][k]
        xr = np.asarray(refuse[ir, k], dtype=np.float64)
        xc = np.asarray(comply[ic, k], dtype=np.float64)
        pr, pc = xr @ r, xc @ r
        row = {
            "layer": k, "rel_depth": round(k / max(n_layers - 1, 1), 4), "norm": float(dirs["norm"][k]),
            "auc": auc(pr, pc), "separation": separation(pr, pc),
            "auc_projected": auc(xr @ rp, xc @ rp), "separation_projected": separation(xr @ rp, xc @ rp),
            "cos_prev": float(r @ dirs["diff"][k - 1]) if k > 0 else float("nan"),
            "cos_next": float(r @ dirs["diff"][k + 1]) if k + 1 < n_layers else float("nan"),
            "cos_projected": float(r @ rp),
        }
        rows.append(row)
    return rows, split


def write_directions(act_dir: Path, vectors_dir: Path, *, variant: str = "diff") -> dict:
    """Compute directions + diagnostics from ``act_dir``; write refusal_dirs.safetensors,
    refusal_ranking.csv and the per-layer plot into ``vectors_dir``. Returns a summary."""
    import json

    import torch
    from safetensors.torch import save_file

    if variant not in VARIANTS:
        raise AbliterationError(f"unknown direction variant {variant!r}: use one of {', '.join(VARIANTS)}")
    act_dir, vectors_dir = Path(act_dir), Path(vectors_dir)
    meta_path = act_dir / META_FILE
    if not meta_path.is_file():
        raise AbliterationError(f"{meta_path} not found: run `ablbench abliterate capture` first")
    meta = json.loads(meta_path.read_text())
    means = load_means(act_dir)
    fit_split = "train" if "refuse_train" in means and "comply_train" in means else "all"
    mr, mc = means[f"refuse_{fit_split}"], means[f"comply_{fit_split}"]
    dirs = compute_directions(mr, mc)
    if not np.all(dirs["norm"] > 0):
        bad = [int(k) for k in np.nonzero(dirs["norm"] == 0)[0]]
        raise AbliterationError(f"the bucket means are identical at layers {bad}: the contrast has no signal")
    rows, diag_split = diagnostics(act_dir, dirs, meta)
    tensors = {
        "directions": torch.from_numpy(dirs[variant]).float().contiguous(),
        "directions_diff": torch.from_numpy(dirs["diff"]).float().contiguous(),
        "directions_projected": torch.from_numpy(dirs["projected"]).float().contiguous(),
        "mean_refuse": torch.from_numpy(mr).float().contiguous(),
        "mean_comply": torch.from_numpy(mc).float().contiguous(),
    }
    vectors_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(vectors_dir / DIRS_FILE) as tmp:
        save_file(tensors, str(tmp), metadata={
            "variant": variant, "fit_split": fit_split, "model": meta.get("model", ""),
            "rows": "row i = direction from the residual stream output of decoder layer i",
        })
    write_ranking(vectors_dir / RANKING_FILE, rows)
    plot_layers(vectors_dir / PLOT_FILE, rows)
    return {
        "variant": variant, "fit_split": fit_split, "diagnostic_split": diag_split,
        "n_layers": len(rows), "d_model": int(mr.shape[1]), "layers": rows,
    }


def load_directions(vectors_dir: Path) -> tuple[np.ndarray, dict]:
    """The "directions" stack [L, d] float32 and the file's metadata."""
    from safetensors import safe_open

    path = Path(vectors_dir) / DIRS_FILE
    if not path.is_file():
        raise AbliterationError(f"{path} not found: run `ablbench abliterate directions` first")
    with safe_open(str(path), framework="numpy") as fh:
        return fh.get_tensor("directions"), dict(fh.metadata() or {})


def blend(stack: np.ndarray, layer: float) -> np.ndarray:
    """Unit direction at a (fractional) layer: linear blend of the two neighbouring rows."""
    import math

    n = stack.shape[0]
    if not (math.isfinite(layer) and 0 <= layer <= n - 1):
        raise AbliterationError(f"layer {layer} is outside 0..{n - 1}: pick a layer of this model")
    lo = int(math.floor(layer))
    frac = layer - lo
    v = stack[lo].astype(np.float64) if frac == 0 else (1 - frac) * stack[lo] + frac * stack[lo + 1]
    return v / np.linalg.norm(v)


def save_chosen(vectors_dir: Path, vector: np.ndarray) -> Path:
    """Write the chosen unit vector (d,) float32 as ``refusal_dir.pt`` (torch.save of a tensor)."""
    import torch

    path = Path(vectors_dir) / DIR_FILE
    with atomic_path(path) as tmp:
        torch.save(torch.from_numpy(np.asarray(vector, dtype=np.float32)).contiguous(), tmp)
    return path


_FIELDS_FIRST = ["layer", "rel_depth", "norm", "auc", "separation", "auc_projected", "separation_projected",
                 "cos_prev", "cos_next", "cos_projected"]


def write_ranking(path: Path, rows: list[dict]) -> None:
    """refusal_ranking.csv: one row per layer (diagnostics, then behavioural columns when present)."""
    fields = list(_FIELDS_FIRST)
    for row in rows:
        fields += [k for k in row if k not in fields]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    write_text(path, buf.getvalue())


def read_ranking(path: Path) -> list[dict]:
    """Rows of refusal_ranking.csv with numbers parsed."""
    out = []
    with Path(path).open(newline="") as fh:
        for row in csv.DictReader(fh):
            parsed: dict = {}
            for k, v in row.items():
                if v in ("", None):
                    parsed[k] = None
                    continue
                try:
                    parsed[k] = int(v) if k == "layer" else float(v)
                except ValueError:
                    parsed[k] = v
            out.append(parsed)
    return out


def plot_layers(path: Path, rows: list[dict], chosen: float | None = None) -> None:
    """Per-layer PNG: AUC, separation, norm, neighbour cosine, and behavioural scores when present."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = [r["layer"] for r in rows]

    def col(name):
        return [r.get(name) if r.get(name) is not None else float("nan") for r in rows]

    behaviour = any(r.get("refusal_drop") is not None for r in rows)
    n_axes = 5 if behaviour else 4
    fig, axes = plt.subplots(n_axes, 1, figsize=(8, 2.2 * n_axes), sharex=True)
    axes[0].plot(layers, col("auc"), marker="o", label="AUC (diff)")
    axes[0].plot(layers, col("auc_projected"), marker=".", label="AUC (projected)")
    axes[0].set_ylabel("AUC (eval)")
    axes[0].legend(fontsize=7)
    axes[1].plot(layers, col("separation"), marker="o")
    axes[1].set_ylabel("separation")
    axes[2].plot(layers, col("norm"), marker="o")
    axes[2].set_ylabel("‖μr − μc‖")
    axes[3].plot(layers, col("cos_prev"), marker="o")
    axes[3].set_ylabel("cos(prev layer)")
    if behaviour:
        ax = axes[4]
        ax.plot(layers, col("refusal_drop"), marker="o", label="refusal drop")
        ax.set_ylabel("refusal drop")
        ax2 = ax.twinx()
        ax2.plot(layers, col("kl"), marker="x", color="tab:red", label="KL")
        ax2.set_ylabel("KL", color="tab:red")
    if chosen is not None:
        for ax in axes:
            ax.axvline(chosen, color="k", ls="--", lw=0.8)
    axes[-1].set_xlabel("decoder layer (output)")
    fig.suptitle("refusal direction per layer")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
