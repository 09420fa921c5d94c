"""contrast -> capture -> directions -> choose | search -> report -> bake -> evaluate, resumable.

Run folder::

    contrast_refuse.jsonl, contrast_comply.jsonl
    activations/   refuse.npy, comply.npy, means.safetensors, meta.json
    vectors/       refusal_dirs.safetensors, refusal_dir.pt, refusal_ranking.csv, refusal_layers.png,
                   sysprompt_dirs.safetensors
    search/        (with search) study.sqlite3, trials.csv, pareto.csv, pareto.png, chosen.json
    abliterated_model/   the baked HF folder (+ abliteration.json); for a GGUF model:
                         <model stem>.abliterated.gguf + abliteration.json
    reports/       directions.json, choice.json, direction_report.json/.md, evaluation.json/.md
    notes/         <step>.log, state.json

"choose" picks one layer and bakes at full strength; "search" (``search=True``; by default on
only with a GPU, it is slow on a CPU) replaces it with the Optuna search of abliterate/search/run.py
and bakes the chosen trial's per-component profile.

A step is skipped when ``notes/state.json`` records it as finished with the same key (a hash of
its options and of its inputs) and its outputs still have the recorded size and mtime.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from abliterate.contrast import COMPLY_FILE, REFUSE_FILE, MessageBuilder, build_contrast, make_records, select
from abliterate.errors import AbliterationError
from abliterate.fsio import file_sha256, write_json
from abliterate.options import PipelineOptions
from abliterate.progress import console, warnings_to_file
from abliterate.prompts import SMOKE_PROMPT, PromptItem

STEPS = ("contrast", "capture", "directions", "choose", "search", "report", "bake", "evaluate")


class StepLog:
    """Timestamped lines to ``notes/<step>.log`` and to the console."""

    def __init__(self, notes: Path, step: str):
        notes.mkdir(parents=True, exist_ok=True)
        self.path = notes / f"{step}.log"
        self.step = step

    def __call__(self, message: str) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(f"{stamp} {message}\n")
        console.print(f"[dim]{self.step}:[/dim] {message}", highlight=False)


def _hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def model_fingerprint(path: Path) -> dict:
    """Identity of a model folder (or GGUF file) without reading gigabytes: config hash + weight sizes/mtimes."""
    path = Path(path).resolve()
    if path.is_file():
        st = path.stat()
        return {"path": str(path), "weights": [(path.name, st.st_size, st.st_mtime_ns)]}
    files = sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin"))
    return {
        "path": str(path), "config": file_sha256(path / "config.json"),
        "weights": [(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files],
    }


class State:
    """notes/state.json: which steps finished with which key and outputs."""

    def __init__(self, out: Path):
        self.out = out
        self.path = out / "notes" / "state.json"
        self.data = json.loads(self.path.read_text()) if self.path.is_file() else {}

    def _stat(self, rel: str) -> list | None:
        p = self.out / rel
        return [p.stat().st_size, p.stat().st_mtime_ns] if p.exists() else None

    def done(self, step: str, key: str) -> bool:
        rec = self.data.get(step)
        if not rec or rec.get("key") != key:
            return False
        return all(self._stat(rel) == st for rel, st in rec["outputs"].items())

    def finish(self, step: str, key: str, outputs: list[str], seconds: float) -> None:
        self.data[step] = {"key": key, "outputs": {rel: self._stat(rel) for rel in outputs},
                           "seconds": round(seconds, 2), "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
        write_json(self.path, self.data)


def run_pipeline(
    model: Path,
    out: Path,
    *,
    refuse_items: list[PromptItem],
    comply_items: list[PromptItem],
    refuse_messages: MessageBuilder,
    comply_messages: MessageBuilder,
    options: PipelineOptions | None = None,
    bake_fn: Callable | None = None,
    format_check: Callable[[str], bool] | None = None,
) -> dict:
    """Run (or resume) every step; returns a summary dict (also written to reports/summary.json).

    ``format_check`` tells whether a reply is a valid agent action (the search's format-damage
    objective; the CLI passes the harness's parser).
    """
    from abliterate.model import check_supported, has_gguf_suffix, load_model, load_tokenizer

    opts = options or PipelineOptions()
    model, out = Path(model), Path(out)
    unknown = set(opts.force) - set(STEPS) - {"all"}
    if unknown:
        raise AbliterationError(f"unknown step(s) {sorted(unknown)} in --force: use {', '.join(STEPS)} or all")
    force = set(STEPS) if "all" in opts.force else set(opts.force)
    check_supported(model, opts.layers_path)
    out.mkdir(parents=True, exist_ok=True)
    notes, reports, vectors, acts = out / "notes", out / "reports", out / "vectors", out / "activations"
    state = State(out)
    summary: dict = {"model": str(model), "out": str(out), "options": asdict(opts), "steps": {}}
    lm_box: dict = {}

    def lm():
        if "lm" not in lm_box:
            lm_box["lm"] = load_model(model, device=opts.device, dtype=opts.dtype, layers_path=opts.layers_path)
        return lm_box["lm"]

    def step(name: str, key: str, outputs: list[str], fn: Callable[[StepLog], None]) -> None:
        log = StepLog(notes, name)
        if name not in force and state.done(name, key):
            console.print(f"[green]✓ {name}[/green] up to date (skipped)")
            summary["steps"][name] = "skipped (up to date)"
            return
        console.rule(f"[bold]{name}")
        t0 = time.perf_counter()
        log(f"start (key {key})")
        with warnings_to_file(log.path):
            fn(log)
        dt = time.perf_counter() - t0
        state.finish(name, key, outputs, dt)
        log(f"done in {dt:.1f} s")
        summary["steps"][name] = f"ran in {dt:.1f} s"

    # 1. contrast: cheap (tokenizer only); rendered every time, written only when it changed
    tok = load_tokenizer(model)
    refuse, comply = build_contrast(
        tok, refuse_items=refuse_items, comply_items=comply_items, refuse_messages=refuse_messages,
        comply_messages=comply_messages, eval_fraction=opts.eval_fraction, seed=opts.seed,
        disjoint_categories=opts.disjoint_categories,
    )
    contrast_key = _hash([refuse, comply])

    def do_contrast(log: StepLog) -> None:
        from abliterate.contrast import write_contrast

        write_contrast(out, refuse, comply)
        for name, recs in (("refuse", refuse), ("comply", comply)):
            n_eval = len(select(recs, "eval"))
            log(f"{name}: {len(recs)} prompts ({len(recs) - n_eval} train, {n_eval} eval)")

    step("contrast", contrast_key, [REFUSE_FILE, COMPLY_FILE], do_contrast)

    # 2. capture
    capture_key = _hash([contrast_key, model_fingerprint(model), opts.dtype, opts.layers_path])
    capture_outputs = ["activations/refuse.npy", "activations/comply.npy", "activations/means.safetensors",
                       "activations/meta.json"]

    def do_capture(log: StepLog) -> None:
        from abliterate.capture import capture

        m = lm()
        log(f"{m.architecture}: {m.n_layers} layers at {m.layers_path}, d_model {m.d_model}, "
            f"{str(m.dtype).removeprefix('torch.')} on {m.device}")
        meta = capture(m, refuse, comply, acts, batch_size=opts.batch_size, show_progress=opts.show_progress)
        for b, info in meta["buckets"].items():
            log(f"{b}: {info['n']} prompts, {info['tokens']} tokens in {info['seconds']} s")

    step("capture", capture_key, capture_outputs, do_capture)

    # 3. directions
    directions_key = _hash([capture_key, opts.variant])

    def do_directions(log: StepLog) -> None:
        from abliterate.directions import write_directions

        res = write_directions(acts, vectors, variant=opts.variant)
        write_json(reports / "directions.json", res)
        aucs = [r["auc"] for r in res["layers"]]
        log(f"variant {res['variant']}, fitted on {res['fit_split']}, diagnostics on {res['diagnostic_split']}")
        log(f"AUC min {min(aucs):.3f} / median {sorted(aucs)[len(aucs) // 2]:.3f} / max {max(aucs):.3f}")

    step("directions", directions_key, ["vectors/refusal_dirs.safetensors"], do_directions)

    # 4. choose (one layer, full strength) or search (Optuna over heretic's parameters)
    searching = opts.search if opts.search is not None else lm_device_is_gpu(opts.device)
    summary["search"] = searching
    choose_key = _hash([directions_key, opts.layer, opts.candidates, opts.n_candidates, opts.kl_bound,
                        opts.choose_gen_tokens])

    def do_choose(log: StepLog) -> None:
        choose_step(lm, acts, vectors, reports, refuse, comply, opts, log)

    search_key = _hash([directions_key, opts.seed, opts.search_trials, opts.search_prompts, opts.search_gen_tokens,
                        opts.search_format_tokens, format_check is not None, opts.kl_bound])

    def do_search(log: StepLog) -> None:
        search_step(model, out, lm, opts, format_check, log)

    if searching:
        step("search", search_key, ["search/chosen.json", "vectors/refusal_dir.pt", "reports/choice.json"], do_search)
        choose_key = search_key
    else:
        step("choose", choose_key, ["vectors/refusal_dir.pt", "reports/choice.json"], do_choose)
    choice = json.loads((reports / "choice.json").read_text())
    summary["chosen_layer"] = choice["chosen_layer"]

    # 4b. what the direction is (base refusal, system-prompt presence)
    if opts.report:
        report_key = _hash([choose_key, file_sha256(vectors / "refusal_dir.pt"), opts.report_prompts,
                            opts.report_tokens])

        def do_report(log: StepLog) -> None:
            from abliterate.direction_report import direction_report

            rep = direction_report(lm(), out, n_prompts=opts.report_prompts, gen_tokens=opts.report_tokens,
                                   batch_size=opts.batch_size)
            for sentence in rep["verdict"]:
                log(sentence)

        step("report", report_key, ["reports/direction_report.json", "vectors/sysprompt_dirs.safetensors"], do_report)
        summary["direction_verdict"] = json.loads((reports / "direction_report.json").read_text())["verdict"]

    # 5. bake (a GGUF model is baked into a GGUF file inside abliterated_model/)
    edited_dir = out / "abliterated_model"
    edited = edited_dir / f"{model.stem}.abliterated.gguf" if has_gguf_suffix(model) else edited_dir
    searched = "profiles" in choice
    bake_key = _hash([choose_key, file_sha256(vectors / "refusal_dir.pt"), model_fingerprint(model),
                      list(opts.components), opts.weight, opts.norm_preserve, choice.get("profiles")])

    def do_bake(log: StepLog) -> None:
        fn = bake_fn
        if fn is None:
            from abliterate.bake.run import bake as fn
        if edited_dir.exists():
            shutil.rmtree(edited_dir)  # our own output folder from an earlier, different run
        kw = {"components": tuple(opts.components)}
        if searched:  # the search's per-component kernels (embeddings are not part of its edit)
            kw = {"components": tuple(choice["components"]), **choice["profiles"]}
        report = fn(model, vectors / "refusal_dir.pt", edited, layer=float(choice["chosen_layer"]),
                    weight=opts.weight, norm_preserve=opts.norm_preserve, progress=opts.show_progress, **kw)
        n_edit = len(report.get("edited", [])) if isinstance(report, dict) else "?"
        log(f"baked {n_edit} tensor(s) into {edited}")

    bake_outputs = [str(edited.relative_to(out)) if has_gguf_suffix(model) else "abliterated_model/config.json"]
    step("bake", bake_key, ["abliterated_model/abliteration.json", *bake_outputs], do_bake)
    summary["edited_model"] = str(edited)

    # 6. evaluate
    # the run's own edited model: identified by content, not path, so a copied run folder resumes
    edited_id = {k: v for k, v in model_fingerprint(edited).items() if k != "path"}
    eval_key = _hash([bake_key, opts.eval_tokens, opts.eval_limit, edited_id, opts.judge, opts.rd])

    def do_evaluate(log: StepLog) -> None:
        from abliterate.evaluate.run import evaluate

        er, ec = select(refuse, "eval") or refuse, select(comply, "eval") or comply
        eb = benign_records(tok)
        if opts.eval_limit:
            er, ec, eb = er[: opts.eval_limit], ec[: opts.eval_limit], eb[: opts.eval_limit]
        smoke = smoke_records(tok, refuse_messages, comply_messages)
        judge = None
        if opts.judge:
            from abliterate.evaluate.judge import Judge

            judge = Judge(*opts.judge)
        rep = evaluate(model, edited, refuse=er, comply=ec, smoke=smoke, max_new_tokens=opts.eval_tokens,
                       batch_size=opts.batch_size, device=opts.device, dtype=opts.dtype, out_dir=reports,
                       show_progress=opts.show_progress, base_lm=lm_box.get("lm"), benign=eb, judge=judge, rd=opts.rd)
        log_evaluation(rep, log)

    step("evaluate", eval_key, ["reports/evaluation.json", "reports/evaluation.md"], do_evaluate)
    ev = json.loads((reports / "evaluation.json").read_text())
    summary["refusal_rate"] = ev["refusal_rate"]
    summary["kl_first_token"] = ev["kl_first_token"]
    summary["robustness"] = ev.get("robustness")
    write_json(reports / "summary.json", summary)
    return summary


def lm_device_is_gpu(device: str) -> bool:
    """Whether ``device`` resolves to a GPU (the search's default is on only there)."""
    from abliterate.model import pick_device

    return pick_device(device).type != "cpu"


def benign_records(tok) -> list[dict]:
    """The everyday questions of abliterate/prompts.py as plain user turns (over-refusal)."""
    from abliterate.contrast import plain_user
    from abliterate.prompts import neutral_prompts

    items = neutral_prompts()
    return make_records(tok, items, plain_user, "benign", {i.id: "eval" for i in items})


def search_step(model: Path, out: Path, lm_factory: Callable, opts: PipelineOptions,
                format_check: Callable[[str], bool] | None, log: Callable[[str], None]) -> dict:
    """Run the search and write what the later steps read: vectors/refusal_dir.pt and reports/choice.json."""
    import shutil as _shutil

    from abliterate.search.run import SearchOptions, run_search

    sopts = SearchOptions(trials=opts.search_trials, seed=opts.seed, prompts=opts.search_prompts,
                          gen_tokens=opts.search_gen_tokens, format_tokens=opts.search_format_tokens,
                          batch_size=opts.batch_size, kl_bound=opts.kl_bound, device=opts.device, dtype=opts.dtype,
                          layers_path=opts.layers_path)
    doc = run_search(model, out, sopts, format_check=format_check, log=log, lm=lm_factory())
    _shutil.copyfile(doc["direction_file"], out / "vectors" / "refusal_dir.pt")
    choice = {"chosen_layer": doc["direction_index"], "reason": f"search trial {doc['trial']}: {doc['rule']}",
              "variant": doc["variant"], "components": doc["components"], "profiles": doc["profiles"],
              "objectives": doc["objectives"], "front_size": doc["front_size"], "source": "search", "results": []}
    write_json(out / "reports" / "choice.json", choice)
    log(f"chosen trial {doc['trial']} of {doc['trials_complete']} (front {doc['front_size']}): "
        + ", ".join(f"{k} {v:.4g}" for k, v in doc["objectives"].items()))
    return doc


def smoke_records(tok, refuse_messages: MessageBuilder, comply_messages: MessageBuilder) -> list[dict]:
    """The seed's smoke prompt rendered without and with the agent system prompt."""
    item = PromptItem(id="smoke", prompt=SMOKE_PROMPT, category="smoke")
    out = []
    for bucket, builder in (("refuse", refuse_messages), ("comply", comply_messages)):
        rec = make_records(tok, [item], builder, bucket, {"smoke": "eval"})[0]
        rec["id"] = f"smoke-{bucket}"
        out.append(rec)
    return out


def log_evaluation(rep: dict, log: Callable[[str], None]) -> None:
    """One line per bucket: refusal rates and KL."""

    def fmt(x, digits: int = 3) -> str:
        return "-" if x is None else f"{x:.{digits}f}"

    for name, rr in rep["refusal_rate"].items():
        kl = rep["kl_first_token"].get(name, {}).get("mean")
        log(f"{name}: refusal-marker rate base {fmt(rr['base'])} -> edited {fmt(rr['edited'])}, "
            f"first-token KL {fmt(kl, 4)}")


def choose_step(lm_factory: Callable, acts: Path, vectors: Path, reports: Path, refuse: list[dict],
                comply: list[dict], opts: PipelineOptions, log: Callable[[str], None]) -> dict:
    """Pick the layer (behaviourally, or the --layer override) and write refusal_dir.pt + choice.json."""
    from abliterate.capture import load_means
    from abliterate.choose import choose_layer
    from abliterate.directions import (
        PLOT_FILE,
        RANKING_FILE,
        blend,
        load_directions,
        plot_layers,
        read_ranking,
        save_chosen,
        write_ranking,
    )

    stack, meta = load_directions(vectors)
    if opts.layer is not None:
        vec = blend(stack, float(opts.layer))
        report = {"chosen_layer": opts.layer, "reason": "--layer override (no behavioural search)",
                  "variant": meta.get("variant"), "results": []}
        log(f"layer {opts.layer} chosen by --layer")
    else:
        means = load_means(acts)
        probs = None
        if "next_probs_refuse_train" in means and "next_probs_comply_train" in means:
            probs = (means["next_probs_refuse_train"], means["next_probs_comply_train"])
        report = choose_layer(
            lm_factory(), stack, train_probs=probs,
            train_refuse=select(refuse, "train"), train_comply=select(comply, "train"),
            eval_refuse=select(refuse, "eval"), eval_comply=select(comply, "eval"),
            candidates=opts.candidates, n_candidates=opts.n_candidates, kl_bound=opts.kl_bound,
            gen_tokens=opts.choose_gen_tokens, batch_size=opts.batch_size, show_progress=opts.show_progress, log=log,
        )
        report["variant"] = meta.get("variant")
        vec = blend(stack, float(report["chosen_layer"]))
    save_chosen(vectors, vec)
    rows = read_ranking(vectors / RANKING_FILE)
    by_layer = {r["layer"]: r for r in report.get("results", [])}
    for row in rows:
        res = by_layer.get(row["layer"], {})
        row["candidate"] = int(row["layer"] in by_layer)
        for k in ("refusal_drop", "kl", "marker_rate"):
            row[k] = res.get(k)
        row["chosen"] = int(float(row["layer"]) == float(report["chosen_layer"]))
    write_ranking(vectors / RANKING_FILE, rows)
    plot_layers(vectors / PLOT_FILE, rows, chosen=float(report["chosen_layer"]))
    write_json(reports / "choice.json", report)
    return report
