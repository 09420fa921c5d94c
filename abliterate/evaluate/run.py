"""Base vs edited model, side by side: greedy generations, refusal markers, first-token KL.

Works for any edited HF folder (ours or one made elsewhere). The models are loaded one after
the other, so peak memory is one model. KL(base || edited) is computed from raw next-token
logits (float32 log-softmax, float64 accumulation) at the end of each comply prompt.

Refusal figures, in order:
1. every refusal rate carries its count and 95% Wilson interval;
2. over-refusal: the refusal rate on benign prompts (everyday questions, no system prompt)
   sits beside the refusal rate on the refuse bucket;
3. with a judge (``abliterate.evaluate.judge``), the refuse and benign replies are also judged, and the
   judge's Cohen's kappa against the shipped labelled set is reported with them;
4. RRR = share of refuse-bucket ("harmful") prompts refused, CE = 1 - that rate (both by the
   judge when there is one, else by markers, so CE = 1 - RRR here), RD = median SBERT cosine
   drift between base and edited replies per bucket (``abliterate.evaluate.drift``).
"""

from __future__ import annotations

import gc
from pathlib import Path

from abliterate.errors import AbliterationError
from abliterate.evaluate.markers import REFUSAL_MARKERS, matched_markers, refusal_rate
from abliterate.evaluate.refusal_stats import rate_with_ci
from abliterate.fsio import write_json, write_text
from abliterate.infer import generate, kl_rows, next_token_logprobs
from abliterate.model import load_model
from abliterate.options import EvaluationOptions as EvaluationOptions  # re-exported: the step's own options
from abliterate.progress import progress_bar

JSON_FILE = "evaluation.json"
MD_FILE = "evaluation.md"


def _run_model(path: Path, groups: dict[str, list[dict]], *, max_new_tokens: int, batch_size: int,
               device: str, dtype: str, label: str, show_progress: bool, lm=None) -> tuple[dict, dict]:
    """Generations per group and next-token log-probs for the "comply"/"refuse" groups."""
    owned = lm is None
    if owned:
        lm = load_model(path, device=device, dtype=dtype)
    gens: dict[str, list[str]] = {}
    logps: dict = {}
    total = sum(len(v) for v in groups.values()) + sum(len(groups.get(k, [])) for k in ("refuse", "comply"))
    with progress_bar(show_progress) as prog:
        task = prog.add_task(f"evaluate {label}", total=total)
        for name in ("refuse", "comply"):
            if groups.get(name):
                logps[name] = next_token_logprobs(lm, groups[name], batch_size=batch_size, progress=prog, task=task)
        for name, recs in groups.items():
            gens[name] = generate(lm, recs, max_new_tokens=max_new_tokens, batch_size=batch_size,
                                  progress=prog, task=task) if recs else []
    info = {"path": str(path), "architecture": lm.architecture, "dtype": str(lm.dtype).removeprefix("torch.")}
    if owned:
        del lm
        gc.collect()
    return {"gens": gens, "logp": logps}, info


def _fitting(base: Path, records: list[dict]) -> tuple[list[dict], list[str]]:
    """Split the (automatically added) smoke records into those that fit the context and the rest."""
    from abliterate.model import load_tokenizer, read_config

    if not records:
        return [], []
    cfg = read_config(base)
    limit = (cfg.get("text_config") or cfg).get("max_position_embeddings")
    tok = load_tokenizer(base)
    keep, skipped = [], []
    for rec in records:
        if limit and len(tok(rec["text"], add_special_tokens=False)["input_ids"]) > limit:
            skipped.append(rec["id"])
        else:
            keep.append(rec)
    return keep, skipped


def evaluate(
    base: Path,
    edited: Path | None,
    *,
    refuse: list[dict],
    comply: list[dict],
    smoke: list[dict] = (),
    max_new_tokens: int = 128,
    batch_size: int = 8,
    device: str = "auto",
    dtype: str = "auto",
    out_dir: Path | None = None,
    show_progress: bool = True,
    base_lm=None,
    benign: list[dict] = (),
    judge=None,
    judge_agreement: bool = True,
    rd: bool = True,
) -> dict:
    """Compare ``base`` and ``edited`` (or describe ``base`` alone when ``edited`` is None).

    ``refuse``/``comply`` are rendered contrast records (normally the eval split); ``smoke`` are
    extra records shown side by side (the seed's "List files in /tmp", with and without the
    agent prompt); ``benign`` are everyday prompts for the over-refusal figure. ``judge`` is an
    ``abliterate.evaluate.judge.Judge`` (or None); ``rd`` computes the SBERT drift. Writes evaluation.json
    and evaluation.md into ``out_dir`` when given. ``base_lm`` reuses an already loaded base model.
    """
    if not refuse and not comply:
        raise AbliterationError("evaluate needs prompts: the refuse and comply lists are both empty")
    smoke, too_long = _fitting(Path(base), list(smoke))
    groups = {"refuse": list(refuse), "comply": list(comply), "benign": list(benign), "smoke": smoke}
    kw = {"max_new_tokens": max_new_tokens, "batch_size": batch_size, "device": device, "dtype": dtype,
          "show_progress": show_progress}
    res_base, info_base = _run_model(Path(base), groups, label="base", lm=base_lm, **kw)
    res_edit, info_edit = (None, None)
    if edited is not None:
        res_edit, info_edit = _run_model(Path(edited), groups, label="edited", **kw)
    report: dict = {
        "base": info_base, "edited": info_edit, "max_new_tokens": max_new_tokens, "greedy": True,
        "refusal_markers": list(REFUSAL_MARKERS),
        "n": {k: len(v) for k, v in groups.items()},
        "smoke_skipped": too_long,
        "refusal_rate": {}, "kl_first_token": {}, "samples": {},
    }
    for name in ("refuse", "comply", "benign"):
        if not groups[name]:
            continue
        fb = rate_with_ci([bool(matched_markers(t)) for t in res_base["gens"][name]])
        fe = rate_with_ci([bool(matched_markers(t)) for t in res_edit["gens"][name]]) if res_edit else None
        report["refusal_rate"][name] = {
            "base": refusal_rate(res_base["gens"][name]),
            "edited": refusal_rate(res_edit["gens"][name]) if res_edit else None,
            "n": fb["n"], "base_k": fb["k"], "base_ci": fb["ci"],
            "edited_k": fe["k"] if fe else None, "edited_ci": fe["ci"] if fe else None,
        }
        if res_edit and name in res_base["logp"]:
            lb, le = res_base["logp"][name], res_edit["logp"][name]
            if lb.shape[-1] != le.shape[-1]:
                raise AbliterationError(
                    f"base and edited vocabularies differ ({lb.shape[-1]} vs {le.shape[-1]}): "
                    "KL needs the same tokenizer; compare an edit of the same model"
                )
            kl = kl_rows(lb, le)
            report["kl_first_token"][name] = {
                "mean": float(kl.mean()), "median": float(kl.median()), "max": float(kl.max()),
                "top1_agreement": float((lb.argmax(-1) == le.argmax(-1)).double().mean()),
            }
    report.update(refusal_checks(groups, res_base, res_edit, judge=judge, judge_agreement=judge_agreement, rd=rd))
    for name, recs in groups.items():
        rows = []
        for i, rec in enumerate(recs):
            b = res_base["gens"][name][i]
            e = res_edit["gens"][name][i] if res_edit else None
            rows.append({
                "id": rec.get("id"), "bucket": rec.get("bucket"), "prompt": rec.get("prompt"),
                "base": b, "base_markers": matched_markers(b),
                "edited": e, "edited_markers": matched_markers(e) if e is not None else None,
            })
        report["samples"][name] = rows
    if out_dir is not None:
        out_dir = Path(out_dir)
        write_json(out_dir / JSON_FILE, report)
        write_text(out_dir / MD_FILE, to_markdown(report))
    return report


def refusal_checks(groups: dict[str, list[dict]], res_base: dict, res_edit: dict | None, *, judge=None,
                   judge_agreement: bool = True, rd: bool = True) -> dict:
    """Rules 2-4 of the module doc: over-refusal, judged rates with kappa, RRR / CE / RD."""
    out: dict = {}
    models = {"base": res_base} | ({"edited": res_edit} if res_edit else {})
    if judge is not None:
        from abliterate.evaluate.judge import agreement, judged_rates

        jd: dict = {**judge.describe()}
        if judge_agreement:
            jd["agreement"] = {k: v for k, v in agreement(judge).items() if k not in judge.describe()}
        for name in ("refuse", "benign"):
            if groups[name]:
                jd[name] = {}
                for label, res in models.items():
                    verdicts = judge.label_many([(rec["prompt"], t) for rec, t in
                                                 zip(groups[name], res["gens"][name], strict=True)])
                    jd[name][label] = {**judged_rates(verdicts), "verdicts": [v.label for v in verdicts]}
        out["judge"] = jd
    measure = "judge" if judge is not None else "markers"
    rob: dict = {"measure": measure}
    if groups["refuse"]:
        for label, res in models.items():
            if judge is not None:
                fig = out["judge"]["refuse"][label]
                rate, ci = fig["rate"], fig["ci"]
            else:
                fig = rate_with_ci([bool(matched_markers(t)) for t in res["gens"]["refuse"]])
                rate, ci = fig["rate"], fig["ci"]
            rob[label] = {"RRR": rate, "RRR_ci": ci, "CE": 1.0 - rate, "CE_ci": [1.0 - ci[1], 1.0 - ci[0]],
                          "n": fig["n"]}
    if groups["benign"]:
        rob["over_refusal"] = {label: (out["judge"]["benign"][label] if judge is not None else
                                       rate_with_ci([bool(matched_markers(t)) for t in res["gens"]["benign"]]))
                               for label, res in models.items()}
        for v in rob["over_refusal"].values():
            v.pop("verdicts", None)
    if rd and res_edit:
        from abliterate.evaluate.drift import drift

        rob["RD"] = {name: drift(res_base["gens"][name], res_edit["gens"][name])["median"]
                     for name in ("refuse", "comply", "benign") if groups[name]}
    out["robustness"] = rob
    return out


def _fmt(x) -> str:
    return "—" if x is None else (f"{x:.3f}" if isinstance(x, float) else str(x))


def _rate(x, ci) -> str:
    if x is None:
        return "—"
    return f"{x:.3f}" + (f" ({ci[0]:.2f}–{ci[1]:.2f})" if ci else "")


def _robustness_md(report: dict) -> list[str]:
    rob = report.get("robustness") or {}
    lines: list[str] = []
    if "base" in rob:
        lines += [f"## Refusal robustness (by {rob['measure']})", "",
                  "| model | RRR (95% CI) | CE | over-refusal on benign (95% CI) |", "|---|---|---|---|"]
        for label in ("base", "edited"):
            if label in rob:
                over = (rob.get("over_refusal") or {}).get(label) or {}
                lines.append(f"| {label} | {_rate(rob[label]['RRR'], rob[label]['RRR_ci'])} | {rob[label]['CE']:.3f} "
                             f"| {_rate(over.get('rate'), over.get('ci'))} |")
        if rob.get("RD"):
            lines += ["", "RD (median SBERT cosine drift, base vs edited replies): "
                      + ", ".join(f"{k} {_fmt(v)}" for k, v in rob["RD"].items())]
        lines.append("")
    jd = report.get("judge")
    if jd:
        lines += [f"## Judge: {jd['model']} at {jd['url']} (prompt {jd['prompt_version']})", ""]
        ag = jd.get("agreement")
        if ag:
            lines.append(f"Agreement with the labelled set (n={ag['n']}, unparsed {ag['unparsed']}): Cohen's kappa "
                         f"{ag['kappa_binary']:.3f} binary, {ag['kappa_4_labels']:.3f} on four labels; refusal "
                         f"markers {ag['markers_kappa_binary']:.3f} binary.")
        for name in ("refuse", "benign"):
            for label, fig in (jd.get(name) or {}).items():
                lines.append(f"- {name}, {label}: judged refusal {_rate(fig['rate'], fig['ci'])} "
                             f"(n={fig['n']}, unparsed {fig['unparsed']})")
        lines.append("")
    return lines


def _quote(text: str | None, limit: int = 600) -> str:
    if text is None:
        return "—"
    t = text if len(text) <= limit else text[:limit] + " …"
    return "\n".join("> " + ln for ln in (t.splitlines() or [""]))


def to_markdown(report: dict) -> str:
    """A readable side-by-side report."""
    lines = ["# Base vs edited", "",
             f"- base: `{report['base']['path']}`",
             f"- edited: `{report['edited']['path']}`" if report.get("edited") else "- edited: (none)",
             f"- greedy generations, {report['max_new_tokens']} new tokens; prompts: "
             + ", ".join(f"{k} {v}" for k, v in report["n"].items()), "",
             "| bucket | refusal rate base (95% CI) | refusal rate edited (95% CI) | KL(base‖edited) mean | median "
             "| max | top-1 agree |",
             "|---|---|---|---|---|---|---|"]
    for name, rr in report["refusal_rate"].items():
        kl = report["kl_first_token"].get(name, {})
        label = "benign (over-refusal)" if name == "benign" else name
        lines.append(f"| {label} | {_rate(rr['base'], rr.get('base_ci'))} | {_rate(rr['edited'], rr.get('edited_ci'))} "
                     f"| {_fmt(kl.get('mean'))} | {_fmt(kl.get('median'))} | {_fmt(kl.get('max'))} "
                     f"| {_fmt(kl.get('top1_agreement'))} |")
    lines += ["", "Refusal = the reply contains any marker of the documented list "
              "(`abliterate/evaluate/markers.py`, case-insensitive); intervals are Wilson 95%.", ""]
    lines += _robustness_md(report)
    for name, rows in report["samples"].items():
        if not rows:
            continue
        lines += [f"## {name} prompts", ""]
        for row in rows:
            lines += [f"### {row['id']} ({row['bucket']}): {row['prompt']}", "",
                      f"**base** (markers: {', '.join(row['base_markers']) or 'none'})", "", _quote(row["base"]), ""]
            if row["edited"] is not None:
                lines += [f"**edited** (markers: {', '.join(row['edited_markers']) or 'none'})", "",
                          _quote(row["edited"]), ""]
    return "\n".join(lines) + "\n"
