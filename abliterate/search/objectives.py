"""What one search trial measures, with hooks on the loaded model (no checkpoint is written).

For a trial's direction and per-component strengths (:mod:`abliterate.writer_hooks`):

1. ``refusal``: share of the refuse-bucket prompts whose greedy reply of ``gen_tokens`` tokens
   (100 by default: short replies hide delayed refusals) carries a refusal marker;
2. ``kl``: mean first-token KL(base || edited) over the comply-bucket prompts, from raw logits;
3. ``format_damage`` (only with a format check): share of comply-bucket prompts whose greedy
   first reply of ``format_tokens`` tokens is NOT a valid agent action. The check is injected
   (the CLI passes the harness's parser); abliterate never imports the agent.
Prompts run in batches; the base model's first-token log-probs are computed once.
Every rate also carries its count and Wilson interval (stored as trial attributes).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from abliterate.directions import blend
from abliterate.evaluate.markers import is_refusal
from abliterate.evaluate.refusal_stats import rate_with_ci
from abliterate.infer import generate, kl_rows, next_token_logprobs
from abliterate.model import LoadedModel
from abliterate.search.space import SEARCH_COMPONENTS, TrialParams
from abliterate.writer_hooks import ablated_writers

FormatCheck = Callable[[str], bool]


@dataclass
class Budget:
    """Generation budgets of one trial."""

    gen_tokens: int = 100
    format_tokens: int = 128
    batch_size: int = 8


class TrialEvaluator:
    """Measures the objectives of the base model and of any hooked edit."""

    def __init__(self, lm: LoadedModel, stacks: dict[str, np.ndarray], refuse: list[dict], comply: list[dict], *,
                 budget: Budget | None = None, format_check: FormatCheck | None = None,
                 components=SEARCH_COMPONENTS):
        self.lm, self.stacks, self.refuse, self.comply = lm, stacks, refuse, comply
        self.budget = budget or Budget()
        self.format_check = format_check
        self.components = tuple(components)
        self.base_logp = next_token_logprobs(lm, comply, batch_size=self.budget.batch_size)

    @property
    def objectives(self) -> list[str]:
        """Names of the measured objectives, in the study's order."""
        return ["refusal", "kl", "format_damage"] if self.format_check else ["refusal", "kl"]

    def direction(self, params: TrialParams) -> np.ndarray:
        """The trial's unit direction: the variant's stack blended at the fractional index."""
        return blend(self.stacks[params.variant], params.direction_index)

    def _measure(self, with_kl: bool) -> dict:
        b = self.budget
        out: dict = {}
        replies = generate(self.lm, self.refuse, max_new_tokens=b.gen_tokens, batch_size=b.batch_size)
        ref = rate_with_ci([is_refusal(t) for t in replies])
        out.update(refusal=ref["rate"], refusal_k=ref["k"], refusal_n=ref["n"], refusal_ci=ref["ci"])
        if with_kl:
            kl = kl_rows(self.base_logp, next_token_logprobs(self.lm, self.comply, batch_size=b.batch_size))
            out.update(kl=float(kl.mean()), kl_max=float(kl.max()))
        else:
            out.update(kl=0.0, kl_max=0.0)
        if self.format_check:
            gens = generate(self.lm, self.comply, max_new_tokens=b.format_tokens, batch_size=b.batch_size)
            dmg = rate_with_ci([not self.format_check(t) for t in gens])
            out.update(format_damage=dmg["rate"], format_damage_k=dmg["k"], format_damage_n=dmg["n"],
                       format_damage_ci=dmg["ci"])
        return out

    def base(self) -> dict:
        """The objectives of the unedited model (KL 0 by definition)."""
        t0 = time.perf_counter()
        out = self._measure(with_kl=False)
        out["seconds"] = round(time.perf_counter() - t0, 3)
        return out

    def __call__(self, params: TrialParams) -> dict:
        t0 = time.perf_counter()
        with ablated_writers(self.lm, self.direction(params), params.profiles(), components=self.components):
            out = self._measure(with_kl=True)
        out["seconds"] = round(time.perf_counter() - t0, 3)
        return out
