"""Capture the residual stream at the last prompt token of every decoder layer.

Forward hooks sit on the decoder layers themselves (the last ``output_hidden_states`` entry
is after the final norm, so it is not the residual stream). Batches are RIGHT-padded and each
row's last real token is gathered: with causal attention the real tokens never see the pads,
and the default position ids (0..n-1) stay correct, including for linear-attention layers.
Activations go to float32 ``.npy`` memmaps batch by batch, sums are accumulated in float64, so
memory is bounded by the batch, not by the number of prompts.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from abliterate.errors import AbliterationError
from abliterate.fsio import atomic_path, write_json
from abliterate.model import LoadedModel, layer_output
from abliterate.options import CaptureOptions as CaptureOptions  # re-exported: the step's own options
from abliterate.progress import progress_bar

MEANS_FILE = "means.safetensors"
META_FILE = "meta.json"


def tokenize(lm: LoadedModel, records: list[dict]) -> list[list[int]]:
    """Token ids of each record's rendered text (the template already holds any BOS)."""
    tok = lm.tokenizer
    ids = [tok(r["text"], add_special_tokens=False)["input_ids"] for r in records]
    limit = lm.max_positions
    for rec, row in zip(records, ids, strict=True):
        if not row:
            raise AbliterationError(f"prompt {rec.get('id')!r} renders to zero tokens: check the prompt and template")
        if limit and len(row) > limit:
            raise AbliterationError(
                f"prompt {rec.get('id')!r} is {len(row)} tokens, longer than the model's context ({limit}): "
                "shorten it or drop it from the prompt file"
            )
    return ids


def batches(ids: list[list[int]], batch_size: int) -> Iterator[list[int]]:
    """Row indices grouped into batches of similar length (less padding)."""
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    for start in range(0, len(order), batch_size):
        yield order[start:start + batch_size]


def pad_right(ids, rows: list[int], pad_id: int, device):
    """(input_ids, attention_mask, last_index) tensors for the given rows, right-padded."""
    import torch

    width = max(len(ids[i]) for i in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for j, i in enumerate(rows):
        input_ids[j, : len(ids[i])] = torch.tensor(ids[i])
        mask[j, : len(ids[i])] = 1
    last = torch.tensor([len(ids[i]) - 1 for i in rows])
    return input_ids.to(device), mask.to(device), last.to(device)


class LastTokenHooks:
    """Forward hooks that copy each decoder layer's output at the last real token into a buffer."""

    def __init__(self, lm: LoadedModel):
        self.lm = lm
        self.handles: list = []
        self.buffer = None  # [B, L, d] float32 on the model's device
        self.active = True
        self.rows = None
        self.last = None

    def prepare(self, last) -> None:
        """Set the gather index for the next forward pass."""
        import torch

        b = last.shape[0]
        self.rows = torch.arange(b, device=last.device)
        self.last = last
        self.buffer = torch.empty((b, self.lm.n_layers, self.lm.d_model), dtype=torch.float32, device=last.device)

    def _hook(self, k: int):
        def fn(_module, _args, output):
            if not self.active:
                return
            h = layer_output(output)
            self.buffer[:, k] = h[self.rows, self.last].float()
        return fn

    def __enter__(self) -> LastTokenHooks:
        self.handles = [layer.register_forward_hook(self._hook(k)) for k, layer in enumerate(self.lm.layers)]
        return self

    def __exit__(self, *exc) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []


#: shortest shared prefix worth computing once per batch (the agent system prompt is ~300 tokens)
MIN_PREFIX = 32


def common_prefix(ids: list[list[int]], rows: list[int]) -> int:
    """Length of the token prefix shared by all rows (leaving each row at least one token)."""
    first = ids[rows[0]]
    limit = min(len(ids[i]) for i in rows) - 1
    k = 0
    while k < limit and all(ids[i][k] == first[k] for i in rows):
        k += 1
    return k


def forward(lm: LoadedModel, input_ids, mask, last, past=None):
    """One forward pass; returns float32 next-token logits at each row's last real token.

    Only the rows' last positions go through the LM head (``logits_to_keep`` as an index tensor).
    """
    import torch

    keep, inverse = torch.unique(last, return_inverse=True)
    kw = {"past_key_values": past, "use_cache": True} if past is not None else {"use_cache": False}
    logits = lm.model(input_ids=input_ids, attention_mask=mask, logits_to_keep=keep, **kw).logits
    return logits[torch.arange(last.shape[0], device=logits.device), inverse].float()


def run_rows(lm: LoadedModel, ids: list[list[int]], rows: list[int], hooks: LastTokenHooks | None = None,
             prefix_cache: bool = True):
    """Forward the given rows; next-token logits [B, vocab] at their last tokens (hooks filled too).

    When the rows share a long prefix (the agent system prompt), it is computed once, its KV
    cache repeated over the batch, and only the suffixes are run: the same numbers, a fraction of
    the work. The hooks are muted during the prefix pass.
    """
    import torch

    prefix_cache = prefix_cache and lm.prefix_cache and len(rows) > 1
    n_prefix = common_prefix(ids, rows) if prefix_cache else 0
    pad = lm.tokenizer.pad_token_id
    if n_prefix < MIN_PREFIX:
        input_ids, mask, last = pad_right(ids, rows, pad, lm.device)
        if hooks is not None:
            hooks.prepare(last)
        return forward(lm, input_ids, mask, last)
    prefix = torch.tensor([ids[rows[0]][:n_prefix]], device=lm.device)
    if hooks is not None:
        hooks.active = False
    try:
        past = lm.model(input_ids=prefix, use_cache=True, logits_to_keep=1).past_key_values
    finally:
        if hooks is not None:
            hooks.active = True
    try:
        past.batch_repeat_interleave(len(rows))
    except (AttributeError, NotImplementedError):
        lm.prefix_cache = False  # e.g. linear-attention state: run whole prompts from now on
        return run_rows(lm, ids, rows, hooks, prefix_cache=False)
    suffixes = {i: ids[i][n_prefix:] for i in rows}
    input_ids, smask, last = pad_right(suffixes, rows, pad, lm.device)
    mask = torch.cat([torch.ones((len(rows), n_prefix), dtype=smask.dtype, device=smask.device), smask], dim=1)
    if hooks is not None:
        hooks.prepare(last)
    return forward(lm, input_ids, mask, last, past=past)


@dataclass
class BucketCapture:
    """What one bucket's capture produced."""

    n: int
    tokens: int
    seconds: float


def capture_records(
    lm: LoadedModel, records: list[dict], out_npy: Path | None, *, batch_size: int = 8,
    progress=None, task=None, prefix_cache: bool = True,
) -> tuple[dict[str, np.ndarray], BucketCapture]:
    """Capture every record; rows go to ``out_npy`` (memmap [N, L, d] float32) if given.

    Returns per-split float64 sums ``{"train": [L, d], "eval": ..., "all": ...}``, the per-split
    sums of next-token probabilities (``"probs_train"`` ... [vocab]) and counts.
    """
    import torch

    ids = tokenize(lm, records)
    n, n_layers, d = len(records), lm.n_layers, lm.d_model
    store = None
    if out_npy is not None:
        store = np.lib.format.open_memmap(out_npy, mode="w+", dtype=np.float32, shape=(n, n_layers, d))
    sums = {s: np.zeros((n_layers, d), dtype=np.float64) for s in ("train", "eval", "all")}
    probs: dict[str, np.ndarray] = {}
    counts = {"train": 0, "eval": 0, "all": 0}
    split = [r.get("split", "train") for r in records]
    t0 = time.perf_counter()
    with torch.no_grad(), LastTokenHooks(lm) as hooks:
        for rows in batches(ids, batch_size):
            logits = run_rows(lm, ids, rows, hooks, prefix_cache=prefix_cache)
            p = torch.softmax(logits, dim=-1).double().cpu().numpy()
            acts = hooks.buffer.cpu().numpy()
            for j, i in enumerate(rows):
                if store is not None:
                    store[i] = acts[j]
                row64 = acts[j].astype(np.float64)
                for key in (split[i], "all"):
                    sums[key] += row64
                    counts[key] += 1
                    probs[key] = probs[key] + p[j] if key in probs else p[j].copy()
            if progress is not None:
                progress.advance(task, len(rows))
    if store is not None:
        store.flush()
        del store
    stats = BucketCapture(n=n, tokens=sum(len(r) for r in ids), seconds=time.perf_counter() - t0)
    return {**sums, **{f"probs_{k}": v for k, v in probs.items()}, "_counts": counts}, stats


def capture(
    lm: LoadedModel, refuse: list[dict], comply: list[dict], out_dir: Path, *,
    batch_size: int = 8, save_activations: bool = True, show_progress: bool = True,
) -> dict:
    """Capture both buckets into ``out_dir`` (refuse.npy, comply.npy, means.safetensors, meta.json)."""
    import torch
    from safetensors.torch import save_file

    if not refuse or not comply:
        raise AbliterationError("capture needs records in both buckets: rerun `abliterate contrast`")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    means: dict[str, torch.Tensor] = {}
    meta: dict = {
        "model": str(lm.path), "architecture": lm.architecture, "model_type": lm.model_type,
        "layers_path": lm.layers_path, "n_layers": lm.n_layers, "d_model": lm.d_model,
        "dtype": str(lm.dtype).removeprefix("torch."), "device": str(lm.device), "batch_size": batch_size,
        "position": "last prompt token (right padding, per-row index)", "buckets": {},
    }
    with progress_bar(show_progress) as prog:
        for bucket, records in (("refuse", refuse), ("comply", comply)):
            task = prog.add_task(f"capture {bucket}", total=len(records))
            npy = out_dir / f"{bucket}.npy"
            if save_activations:
                with atomic_path(npy) as tmp:
                    sums, stats = capture_records(lm, records, tmp, batch_size=batch_size, progress=prog, task=task)
            else:
                npy.unlink(missing_ok=True)
                sums, stats = capture_records(lm, records, None, batch_size=batch_size, progress=prog, task=task)
            counts = sums.pop("_counts")
            for key, total in sums.items():
                split = key.removeprefix("probs_")
                if counts[split]:
                    name = f"next_probs_{bucket}_{split}" if key.startswith("probs_") else f"{bucket}_{split}"
                    means[name] = torch.from_numpy(total / counts[split])
            meta["buckets"][bucket] = {
                "n": stats.n, "tokens": stats.tokens, "seconds": round(stats.seconds, 3), "counts": counts,
                "ids": [r["id"] for r in records], "splits": [r.get("split", "train") for r in records],
                "activations": npy.name if save_activations else None,
            }
    with atomic_path(out_dir / MEANS_FILE) as tmp:
        save_file({k: v.contiguous() for k, v in means.items()}, str(tmp), metadata={"dtype": "float64"})
    write_json(out_dir / META_FILE, meta)
    return meta


def load_means(act_dir: Path) -> dict[str, np.ndarray]:
    """Per-bucket/per-split float64 means from ``means.safetensors``."""
    from safetensors.numpy import load_file

    path = Path(act_dir) / MEANS_FILE
    if not path.is_file():
        raise AbliterationError(f"{path} not found: run `ablbench abliterate capture` first")
    return load_file(str(path))


def load_activations(act_dir: Path, bucket: str) -> np.ndarray:
    """The captured [N, L, d] float32 activations of a bucket (memory-mapped)."""
    path = Path(act_dir) / f"{bucket}.npy"
    if not path.is_file():
        raise AbliterationError(f"{path} not found: rerun capture without --no-save-activations")
    return np.load(path, mmap_mode="r")
