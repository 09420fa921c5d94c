"""Choose the source layer by behaviour, not by separability.

For each candidate layer outside the last 20% of the model, the candidate's direction is
ablated at inference time (projected out of everything written into the residual stream: the
embedding, every attention and MLP output, every decoder layer; see ``infer.ablated``) and two
things are measured on HELD-OUT prompts:

(a) refusal drop on "refuse" prompts, as next-token log-odds:
    score(prompt) = log P(refuse tokens) - log P(comply tokens), where the refuse/comply token
    sets are the first tokens the BASE model favours on the train split's refuse vs comply
    prompts (for a refusing model these are "I"/"Sorry" vs "Sure"/"{"); drop = base - ablated.
    With ``gen_tokens > 0`` the refusal-marker rate of short greedy generations is measured too.
(b) KL(base || ablated) of the next-token distributions on "comply" prompts.

Rule: among candidates with mean KL <= ``kl_bound``, the highest marker-rate drop wins when the
base model refuses at least ``marker_floor`` of the held-out refuse prompts by marker, else the
highest log-odds drop (ties broken by the other measure, then lower KL). When no candidate
meets the bound (small models: ablating at every layer moves them a lot), the bound is relaxed
to twice the lowest candidate KL and the same rule applies; the report says so.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from abliterate.errors import AbliterationError
from abliterate.evaluate.markers import is_refusal
from abliterate.evaluate.refusal_stats import wilson
from abliterate.infer import ablated, generate, kl_rows, next_token_logprobs
from abliterate.model import LoadedModel
from abliterate.progress import progress_bar


def _marker_rate(texts: list[str]) -> tuple[float, list[float]]:
    """Marker rate of ``texts`` and its 95% Wilson interval."""
    k = sum(is_refusal(t) for t in texts)
    return (k / len(texts) if texts else 0.0), list(wilson(k, len(texts)))


def default_candidates(n_layers: int, count: int = 6) -> list[int]:
    """``count`` evenly spaced layers from ~10% depth up to (not into) the last 20% of layers."""
    hi = max(math.ceil(0.8 * n_layers) - 1, 0)  # last allowed layer
    lo = min(max(1, round(0.1 * n_layers)), hi)
    if count <= 1 or hi == lo:
        return [hi] if count >= 1 else []
    return sorted({int(round(x)) for x in np.linspace(lo, hi, count)})


def contrast_tokens(mean_refuse, mean_comply, k: int = 8) -> tuple[list[int], list[int]]:
    """Token ids the base model favours after refuse vs comply prompts (from mean next-token probs)."""
    import torch

    diff = torch.as_tensor(mean_refuse, dtype=torch.float64) - torch.as_tensor(mean_comply, dtype=torch.float64)
    refuse_ids = [int(i) for i in diff.topk(k).indices if diff[i] > 0]
    comply_ids = [int(i) for i in (-diff).topk(k).indices if diff[i] < 0]
    if not refuse_ids or not comply_ids:
        raise AbliterationError("the base model's next-token distributions do not differ between buckets")
    return refuse_ids, comply_ids


def logodds(logp, refuse_ids: list[int], comply_ids: list[int]):
    """Per-row log P(refuse set) - log P(comply set)."""
    import torch

    lr = torch.logsumexp(logp[:, refuse_ids].double(), dim=-1)
    lc = torch.logsumexp(logp[:, comply_ids].double(), dim=-1)
    return lr - lc


def pick(results: list[dict], kl_bound: float, use_markers: bool) -> tuple[dict, float, bool, str]:
    """Apply the rule of the module docstring; returns (best result, bound used, relaxed?, reason)."""
    bound, relaxed = kl_bound, False
    ok = [r for r in results if r["kl"] <= bound]
    if not ok:
        bound, relaxed = 2.0 * min(r["kl"] for r in results), True
        ok = [r for r in results if r["kl"] <= bound]

    def key(r):
        primary = r["marker_drop"] if use_markers else r["refusal_drop"]
        secondary = r["refusal_drop"] if use_markers else (r["marker_drop"] or 0.0)
        return (primary, secondary, -r["kl"])

    best = max(ok, key=key)
    reason = (f"highest {'marker-rate' if use_markers else 'log-odds'} refusal drop among "
              f"{len(ok)} candidate(s) with KL <= {bound:.4g}")
    if relaxed:
        reason = f"no candidate had KL <= {kl_bound}; bound relaxed to 2 x lowest KL; " + reason
    return best, bound, relaxed, reason


def choose_layer(
    lm: LoadedModel,
    directions: np.ndarray,
    *,
    train_probs: tuple | None = None,
    train_refuse: list[dict] = (),
    train_comply: list[dict] = (),
    eval_refuse: list[dict],
    eval_comply: list[dict],
    candidates: list[int] | None = None,
    n_candidates: int = 6,
    kl_bound: float = 0.1,
    gen_tokens: int = 24,
    marker_floor: float = 0.2,
    batch_size: int = 8,
    show_progress: bool = True,
    log: Callable[[str], None] = lambda _m: None,
) -> dict:
    """Score candidate layers by ablation; returns the full decision report (JSON-ready).

    ``train_probs`` = (mean next-token probs after train refuse prompts, after train comply
    prompts), as saved by capture; without it they are computed from the train records.
    """
    n_layers = directions.shape[0]
    if not eval_refuse or not eval_comply:
        raise AbliterationError("behavioural choice needs held-out prompts in both buckets: use --eval-fraction > 0")
    if train_probs is None and (not train_refuse or not train_comply):
        raise AbliterationError("behavioural choice needs train prompts in both buckets")
    limit = math.ceil(0.8 * n_layers)
    cands = sorted(set(candidates)) if candidates else default_candidates(n_layers, n_candidates)
    bad = [c for c in cands if not 0 <= c < n_layers]
    if bad:
        raise AbliterationError(f"candidate layers {bad} are outside 0..{n_layers - 1}")
    late = [c for c in cands if c >= limit]
    if late:
        log(f"note: candidates {late} lie in the last 20% of layers (>= {limit}); kept because they were asked for")
    bs = batch_size
    steps = 4 + len(cands) * 2 + (1 + len(cands)) * (1 if gen_tokens > 0 else 0)
    with progress_bar(show_progress) as prog:
        task = prog.add_task("choose layer", total=steps)
        if train_probs is None:
            train_probs = tuple(next_token_logprobs(lm, recs, batch_size=bs).double().exp().mean(0)
                                for recs in (train_refuse, train_comply))
        refuse_ids, comply_ids = contrast_tokens(*train_probs)
        tok = lm.tokenizer
        log(f"refuse tokens {[tok.decode([i]) for i in refuse_ids]}; comply tokens "
            f"{[tok.decode([i]) for i in comply_ids]}")
        prog.advance(task, 2)
        base_r = next_token_logprobs(lm, eval_refuse, batch_size=bs)
        base_c = next_token_logprobs(lm, eval_comply, batch_size=bs)
        prog.advance(task, 2)
        base_score = float(logodds(base_r, refuse_ids, comply_ids).mean())
        base_comply_score = float(logodds(base_c, refuse_ids, comply_ids).mean())
        base_marker, base_ci = None, None
        if gen_tokens > 0:
            base_marker, base_ci = _marker_rate(generate(lm, eval_refuse, max_new_tokens=gen_tokens, batch_size=bs))
            prog.advance(task)
        log(f"base: refuse log-odds {base_score:.3f} (comply prompts {base_comply_score:.3f}), "
            f"marker rate {base_marker}")
        results = []
        for c in cands:
            with ablated(lm, directions[c]):
                abl_r = next_token_logprobs(lm, eval_refuse, batch_size=bs)
                prog.advance(task)
                abl_c = next_token_logprobs(lm, eval_comply, batch_size=bs)
                prog.advance(task)
                marker, marker_ci = None, None
                if gen_tokens > 0:
                    marker, marker_ci = _marker_rate(generate(lm, eval_refuse, max_new_tokens=gen_tokens,
                                                              batch_size=bs))
                    prog.advance(task)
            score = float(logodds(abl_r, refuse_ids, comply_ids).mean())
            kl = kl_rows(base_c, abl_c)
            res = {
                "layer": c, "refuse_logodds": score, "refusal_drop": base_score - score,
                "kl": float(kl.mean()), "kl_max": float(kl.max()),
                "kl_refuse": float(kl_rows(base_r, abl_r).mean()),
                "marker_rate": marker, "marker_rate_ci": marker_ci,
                "marker_drop": None if marker is None else base_marker - marker,
            }
            results.append(res)
            log(f"layer {c}: refusal drop {res['refusal_drop']:.3f} nats, KL {res['kl']:.4f}, "
                f"marker rate {marker}")
    use_markers = base_marker is not None and base_marker >= marker_floor
    best, bound, relaxed, reason = pick(results, kl_bound, use_markers)
    log(f"chosen layer {best['layer']}: {reason}")
    return {
        "chosen_layer": best["layer"], "reason": reason, "kl_bound": kl_bound, "kl_bound_used": bound,
        "kl_bound_relaxed": relaxed,
        "primary_metric": "marker_drop" if use_markers else "refusal_drop",
        "candidates": cands, "excluded_from": limit, "n_layers": n_layers,
        "refuse_tokens": [tok.decode([i]) for i in refuse_ids], "comply_tokens": [tok.decode([i]) for i in comply_ids],
        "base": {"refuse_logodds": base_score, "comply_logodds": base_comply_score, "marker_rate": base_marker,
                 "marker_rate_ci": base_ci},
        "gen_tokens": gen_tokens, "marker_floor": marker_floor,
        "n_eval": {"refuse": len(eval_refuse), "comply": len(eval_comply)},
        "results": results,
    }
