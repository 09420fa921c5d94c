"""Inference helpers shared by layer choice and evaluation: next-token log-probs, greedy
generation, and inference-time directional ablation with hooks."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from abliterate.capture import batches, run_rows, tokenize
from abliterate.model import LoadedModel, layer_output


def next_token_logprobs(lm: LoadedModel, records: list[dict], *, batch_size: int = 8, progress=None, task=None):
    """float32 log-softmax of the next-token logits after each prompt: tensor [N, vocab] on CPU.

    Right-padded batches; only the rows' last real positions are sent through the LM head
    (``logits_to_keep`` as an index tensor), so memory stays small even for big vocabularies.
    """
    import torch

    ids = tokenize(lm, records)
    out: list = [None] * len(records)
    with torch.no_grad():
        for rows in batches(ids, batch_size):
            logp = torch.log_softmax(run_rows(lm, ids, rows), dim=-1).cpu()
            for j, i in enumerate(rows):
                out[i] = logp[j]
            if progress is not None:
                progress.advance(task, len(rows))
    return torch.stack(out)


def kl_rows(logp_p, logp_q):
    """KL(p || q) per row from log-probs (float64 accumulation)."""
    p = logp_p.double()
    return (p.exp() * (p - logp_q.double())).sum(-1)


def generate(
    lm: LoadedModel, records: list[dict], *, max_new_tokens: int = 128, batch_size: int = 8, progress=None, task=None
) -> list[str]:
    """Greedy continuations (left-padded batches; decoded without special tokens)."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class _Tick(StoppingCriteria):
        """Advances the progress bar by one token step of the batch; never stops generation."""

        def __init__(self, rows: int) -> None:
            self.rows, self.steps = rows, 0

        def __call__(self, input_ids, scores, **kwargs):  # noqa: ANN001
            if progress is not None and self.steps < max_new_tokens:
                self.steps += 1
                progress.advance(task, self.rows / max_new_tokens)
            return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

    ids = tokenize(lm, records)
    pad = lm.tokenizer.pad_token_id
    texts: list[str] = [""] * len(records)
    with torch.no_grad():
        for rows in batches(ids, batch_size):
            width = max(len(ids[i]) for i in rows)
            input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for j, i in enumerate(rows):
                input_ids[j, width - len(ids[i]):] = torch.tensor(ids[i])
                mask[j, width - len(ids[i]):] = 1
            tick = _Tick(len(rows))
            gen = lm.model.generate(
                input_ids=input_ids.to(lm.device), attention_mask=mask.to(lm.device), max_new_tokens=max_new_tokens,
                do_sample=False, temperature=None, top_p=None, top_k=None, pad_token_id=pad,
                stopping_criteria=StoppingCriteriaList([tick]),
            )
            for j, i in enumerate(rows):
                texts[i] = lm.tokenizer.decode(gen[j, width:], skip_special_tokens=True).strip()
            if progress is not None:  # the steps an early end-of-sequence skipped
                progress.advance(task, len(rows) * (max_new_tokens - tick.steps) / max_new_tokens)
    return texts


#: decoder-layer attributes holding the modules that write into the residual stream (pre-norm blocks)
WRITER_MODULES = ("self_attn", "linear_attn", "mlp", "block_sparse_moe", "feed_forward")
#: sandwich-norm blocks: what is added to the residual is the post-norm's output, not the module's
POSTNORM_WRITERS = ("post_attention_layernorm", "post_feedforward_layernorm")
_SANDWICH = {"gemma2", "gemma3", "gemma3_text", "gemma4", "gemma4_text", "olmo2", "olmo3"}


def _writers(lm: LoadedModel) -> list:
    """Every module whose output is added to the residual stream, layer by layer."""
    names = POSTNORM_WRITERS if lm.model_type in _SANDWICH else WRITER_MODULES
    return [mod for layer in lm.layers for name in names if (mod := getattr(layer, name, None)) is not None]


@contextlib.contextmanager
def ablated(lm: LoadedModel, direction) -> Iterator[None]:
    """Project ``direction`` out of everything written into the residual stream.

    This is inference-time directional ablation, equal to baking the direction out of every writer
    (abliterate.bake.run): the embedding's output, each attention and MLP output (in sandwich-norm
    blocks, each post-norm's output) and each decoder layer's output are projected, so no
    layer, norm or LM head ever reads a component along the direction (also between a block's
    attention and its MLP).
    """
    import torch

    r = torch.as_tensor(direction, dtype=torch.float32).flatten()
    r = (r / r.norm()).to(lm.device)

    def project(h):
        rr = r.to(h.dtype)
        return h - (h @ rr).unsqueeze(-1) * rr

    def hook(_module, _args, output):
        if isinstance(output, tuple | list):
            return (project(layer_output(output)), *output[1:])
        return project(output)

    modules = [lm.model.get_input_embeddings(), *_writers(lm), *lm.layers]
    handles = [m.register_forward_hook(hook) for m in modules]
    try:
        yield
    finally:
        for h in handles:
            h.remove()
