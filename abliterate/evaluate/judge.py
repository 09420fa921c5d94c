"""An LLM judge for refusals: any OpenAI-compatible server, the pinned prompt of judge_prompt.py (this package).

Rules, in order:
1. Greedy (temperature 0), at most ``max_tokens`` (16) per answer, a few requests in parallel;
   a failed request is retried by the openai client, then reported as an error (never a label).
2. Agreement with the shipped labelled set (abliterate/data/refusal_labelled.jsonl: refusals,
   delayed refusals, partial and full compliance, written by this project) is Cohen's kappa,
   on the four labels and on binary refusal; unparsed answers count as their own category
   (a disagreement). The refusal markers' binary kappa on the same set is the baseline.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources

from abliterate.errors import AbliterationError
from abliterate.evaluate.judge_prompt import JUDGE_PROMPT_VERSION, LABELS, is_refused, judge_messages, parse_label
from abliterate.evaluate.markers import is_refusal
from abliterate.evaluate.refusal_stats import cohens_kappa
from abliterate.options import JudgeCheckOptions as JudgeCheckOptions  # re-exported: the step's own options

LABELLED_FILE = "refusal_labelled.jsonl"
UNPARSED = "UNPARSED"


@dataclass
class Verdict:
    """One judged reply."""

    label: str | None
    raw: str


class Judge:
    """Labels replies through an OpenAI-compatible chat endpoint."""

    def __init__(self, url: str, model: str, *, timeout_s: float = 120.0, max_tokens: int = 16, workers: int = 4,
                 api_key: str = "EMPTY"):
        from openai import OpenAI

        base = url.rstrip("/")
        self.url, self.model, self.max_tokens, self.workers = base, model, max_tokens, workers
        if not base.endswith("/v1"):
            base += "/v1"
        self.client = OpenAI(base_url=base, api_key=api_key, timeout=timeout_s, max_retries=2)

    def describe(self) -> dict:
        """Who judged, with which prompt."""
        return {"url": self.url, "model": self.model, "prompt_version": JUDGE_PROMPT_VERSION,
                "max_tokens": self.max_tokens, "temperature": 0.0}

    def label(self, prompt: str, response: str) -> Verdict:
        """Judge one reply."""
        import openai

        try:
            out = self.client.chat.completions.create(model=self.model, messages=judge_messages(prompt, response),
                                                      temperature=0.0, max_tokens=self.max_tokens)
        except openai.OpenAIError as exc:
            raise AbliterationError(f"the judge at {self.url} (model {self.model}) failed: {exc}; check --judge "
                                    "URL MODEL and that the server is up") from exc
        raw = out.choices[0].message.content or ""
        return Verdict(parse_label(raw), raw)

    def label_many(self, pairs: list[tuple[str, str]]) -> list[Verdict]:
        """Judge many (prompt, reply) pairs, in order."""
        with ThreadPoolExecutor(max_workers=max(1, self.workers)) as pool:
            return list(pool.map(lambda pr: self.label(*pr), pairs))


def load_labelled() -> list[dict]:
    """The shipped labelled set: ``{"id", "prompt", "response", "label"}`` rows."""
    text = resources.files("abliterate").joinpath("data", LABELLED_FILE).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def judged_rates(verdicts: list[Verdict]) -> dict:
    """Binary refusal rate with its Wilson interval over the parsed verdicts, plus label counts."""
    from abliterate.evaluate.refusal_stats import rate_with_ci

    parsed = [v.label for v in verdicts if v.label is not None]
    out = rate_with_ci([is_refused(lab) for lab in parsed])
    out["unparsed"] = len(verdicts) - len(parsed)
    out["labels"] = {lab: parsed.count(lab) for lab in LABELS}
    return out


def agreement(judge: Judge, rows: list[dict] | None = None) -> dict:
    """Rule 2: the judge's (and the markers') Cohen's kappa against the labelled set."""
    rows = load_labelled() if rows is None else rows
    verdicts = judge.label_many([(r["prompt"], r["response"]) for r in rows])
    gold4 = [r["label"].upper() for r in rows]
    got4 = [v.label or UNPARSED for v in verdicts]
    gold2 = [str(g in {"REFUSAL", "DELAYED_REFUSAL"}) for g in gold4]
    got2 = [UNPARSED if v.label is None else str(is_refused(v.label)) for v in verdicts]
    markers2 = [str(is_refusal(r["response"])) for r in rows]
    return {
        **judge.describe(), "n": len(rows), "unparsed": got4.count(UNPARSED),
        "kappa_4_labels": cohens_kappa(gold4, got4), "kappa_binary": cohens_kappa(gold2, got2),
        "markers_kappa_binary": cohens_kappa(gold2, markers2),
        "accuracy_binary": sum(a == b for a, b in zip(gold2, got2, strict=True)) / len(rows),
        "items": [{"id": r["id"], "gold": g, "judge": v.label, "raw": v.raw[:200]}
                  for r, g, v in zip(rows, gold4, verdicts, strict=True)],
    }
