"""The options of every ``ablbench abliterate`` verb: frozen dataclasses, one field per flag.

Rules, in order:

1. Each option is declared once, here: the field's name, type, default and docstring are the
   flag's name, type, default and help (the CLI generates its flags from them with cyclopts);
   ``Parameter(name=...)`` where the flag is not the field's name, and the aliases below
   where several verbs share one option.
2. A comma list on the command line (``--components embed,attn``, ``--candidates 8,16``,
   ``--force all``) becomes a tuple (or list) of its parts (:func:`comma_list`).
3. This module stays light (no numpy, no torch): the CLI imports it at start-up, and each step
   re-exports its own class (``abliterate.bake.run.BakeOptions`` is this ``BakeOptions``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, get_args, get_origin

from cyclopts import Parameter

#: what a bake edits by default: every residual-stream writer kind
COMPONENTS = ("embed", "attn", "mlp", "experts")


def comma_list(type_: Any, tokens: Sequence[Any]) -> Any:
    """``a,b`` (repeatable) as the parts: a list or a tuple as ``type_`` says, of ints where it holds ints (rule 2)."""
    parts = [p.strip() for t in tokens for p in str(getattr(t, "value", t)).split(",") if p.strip()]
    kinds = [type_, *(a for a in get_args(type_) if a is not type(None))]
    origins = {get_origin(k) or k for k in kinds}
    items = [int(p) for p in parts] if any(int in get_args(k) for k in kinds) else parts
    return items if list in origins else tuple(items)


Device = Annotated[str, Parameter(help="auto, cpu, cuda, cuda:1 ...")]
Dtype = Annotated[str, Parameter(help="auto (fp32 on CPU, stored dtype on GPU), float32, bfloat16 ...")]
BatchSize = Annotated[int, Parameter(help="Prompts per forward pass (memory is bounded by this).")]
LayersPath = Annotated[str | None, Parameter(help="Dotted path of the decoder layers for an unknown arch.")]
JudgeSpec = Annotated[tuple[str, str] | None, Parameter(
    help="Also judge refusals with an LLM behind an OpenAI-compatible URL (pinned prompt): --judge URL MODEL.")]
Quiet = Annotated[bool, Parameter(help="No progress bars.")]
GgufType = Annotated[str, Parameter(help="For a .gguf model: how edited tensors are stored (auto, f16, ...); f16 for partial-strength (search) edits of a quantized model.")]
Prompts = Annotated[Path | None, Parameter(help="Labelled prompt file (.jsonl/.csv: prompt,label[,category]).")]
RefusePrompts = Annotated[Path | None, Parameter(help="Prompts of the refuse bucket (.txt/.jsonl/.csv).")]
ComplyPrompts = Annotated[Path | None, Parameter(help="Prompts of the comply bucket (.txt/.jsonl/.csv).")]
Limit = Annotated[int | None, Parameter(help="Use at most N prompts per bucket (built-ins: spread over categories).")]
EvalFraction = Annotated[float, Parameter(help="Share of prompts held out for evaluation.")]
SplitSeed = Annotated[int, Parameter(help="Seed of the train/eval split.")]
Disjoint = Annotated[bool, Parameter(help="Hold out whole categories (no category in both).")]
Candidates = Annotated[tuple[int, ...] | None, Parameter(help="Comma list of candidate layers.", converter=comma_list)]
NCandidates = Annotated[int, Parameter(help="Evenly spaced candidates outside the last 20%.")]
KlBound = Annotated[float, Parameter(help="Reject candidates with comply-prompt KL above this.")]


@dataclass(frozen=True, kw_only=True)
class ContrastOptions:
    """The options of ``ablbench abliterate contrast``: render and split the contrast set into ``out``."""

    model: Path
    """HF model folder or .gguf file (its chat template renders the prompts)."""
    out: Path
    """Run folder to write contrast_refuse/comply.jsonl into."""
    prompts: Prompts = None  # one labelled file, or refuse_prompts + comply_prompts, or the built-ins
    refuse_prompts: RefusePrompts = None
    comply_prompts: ComplyPrompts = None
    limit: Limit = None
    eval_fraction: EvalFraction = 0.2
    seed: SplitSeed = 0
    disjoint_categories: Disjoint = False


@dataclass(frozen=True, kw_only=True)
class CaptureOptions:
    """The options of ``ablbench abliterate capture``: ``run``'s contrast through ``model`` into run/activations."""

    model: Path
    """HF model folder or .gguf file (read through transformers)."""
    run: Path
    """Run folder holding the contrast files; writes run/activations."""
    batch_size: BatchSize = 8
    device: Device = "auto"
    dtype: Dtype = "auto"
    layers_path: LayersPath = None
    no_save_activations: bool = False
    """Keep only the means."""
    quiet: Quiet = False


@dataclass(frozen=True, kw_only=True)
class DirectionsOptions:
    """The options of ``ablbench abliterate directions``: per-layer directions, then the layer choice."""

    run: Path
    """Run folder with activations/ (and the contrast files)."""
    model: Path | None = None
    """Model for the behavioural choice (default: captured)."""
    variant: str = "diff"
    """diff (mean difference) or projected."""
    layer: float | None = None
    """Use this layer (fractional blends); skip the search."""
    candidates: Candidates = None
    n_candidates: NCandidates = 6
    kl_bound: KlBound = 0.1
    gen_tokens: int = 24
    """Tokens of the short marker generations (0: none)."""
    no_choose: bool = False
    """Only directions + diagnostics; no layer choice."""
    batch_size: BatchSize = 8
    device: Device = "auto"
    dtype: Dtype = "auto"
    layers_path: LayersPath = None
    quiet: Quiet = False


@dataclass(frozen=True, kw_only=True)
class EvaluationOptions:
    """The options of ``ablbench abliterate evaluate`` (``smoke`` fills them from its own)."""

    base: Path
    """The original HF model folder or .gguf file."""
    edited: Path | None = None
    """The edited HF folder or .gguf (any abliteration)."""
    run: Path | None = None
    """Use this run's eval split (else the built-in prompts)."""
    out: Path | None = None
    """Folder for evaluation.json/.md (default: run/reports)."""
    max_new_tokens: int = 128
    """Greedy tokens per generation."""
    limit: int | None = None
    """At most N prompts per bucket."""
    benign: int = 12
    """Everyday prompts for the over-refusal figure (0: none)."""
    judge: JudgeSpec = None
    no_rd: bool = False
    """Skip the SBERT drift (RD) of base vs edited replies."""
    batch_size: BatchSize = 8
    device: Device = "auto"
    dtype: Dtype = "auto"
    quiet: Quiet = False


_PROFILE_HELP = (
    "Per-layer strength profile of one component, heretic style: "
    "COMPONENT:peak=W,pos=P,edge=E,width=H (repeatable; e.g. attn:peak=1.0,pos=14,edge=0.2,width=8). "
    "Layers further than width from pos get 0; inside, the weight falls linearly from peak to edge. "
    "COMPONENT=W alone sets a flat weight."
)


@dataclass(frozen=True, kw_only=True)
class BakeOptions:
    """The options of ``ablbench abliterate bake`` (see :func:`abliterate.bake.run.bake` for each knob)."""

    model: Path
    """Source HF model folder (safetensors) or a .gguf file."""
    direction: Path
    """Direction file: (d,) vector (.npy/.pt/.safetensors) or refusal_dirs.safetensors."""
    out: Path
    """Destination folder (must not exist or be empty); for a .gguf model, a new .gguf file."""
    layer: float | None = None
    """Row of a per-layer direction stack; fractional blends the two neighbours."""
    components: Annotated[tuple[str, ...], Parameter(converter=comma_list)] = COMPONENTS
    """Comma list of what to edit: embed (embedding rows; a tied lm_head follows), attn (o_proj, linear_attn.out_proj), mlp (dense down_proj), experts (routed MoE experts, per-expert or fused, and shared experts). Default: all four (the recipe of embed+attn+mlp, plus the MoE writers)."""
    weight: float = 1.0
    """Global strength alpha (1.0 removes the direction)."""
    profile: Annotated[tuple[str, ...], Parameter(help=_PROFILE_HELP)] = ()
    norm_preserve: bool = False
    """Keep every input-neuron column of each writer at its original norm."""
    postnorm_correction: str = "auto"
    """auto|on|off: project out normalize(g*r) for writers followed by a post-norm (auto = on for gemma2/gemma3/olmo2 sandwich-norm families)."""
    skip_unknown_writers: bool = False
    """Copy writer-like tensors the tool cannot edit unchanged (listed loudly) instead of stopping."""
    gguf_type: str = "auto"
    """GGUF only: type of the edited tensors: auto (F32/F16/BF16 keep their type, Q8_0 ones become F16, other quantized ones Q8_0), f32, f16, bf16 or q8_0. Biases are always F32."""
    q8_bound: float | None = None
    """GGUF only: Q8_0 output must keep max|r^T w'| <= BOUND * max|W| per tensor, else the bake stops (default 0.01; Q8_0 rounding alone measured <= 0.0027 on SmolLM2's Q4_1 writers)."""
    dry_run: bool = False
    """List what would change; write nothing."""


@dataclass(frozen=True, kw_only=True)
class ControlOptions:
    """The options of ``ablbench abliterate control``: bake a control edit of ``run`` into ``out``."""

    model: Path
    """The HF model folder the run baked."""
    run: Path
    """Run folder with abliterated_model/ (or search/chosen.json)."""
    out: Path
    """Folder for the control model (new or empty)."""
    seed: int = 0  # of the random direction (abliterate.control rule 2)
    """Seed of the random direction."""
    direction: Path | None = None  # a second contrast's direction instead (abliterate.control rule 3)
    """Bake this direction instead (a second contrast's), with the same strengths."""
    layer: float | None = None
    """Row of --direction when it is a per-layer stack."""
    gguf_type: GgufType = "auto"
    quiet: bool = False
    """No progress bar."""


@dataclass(frozen=True, kw_only=True)
class BakeRunOptions:
    """The options of ``ablbench abliterate bake-run``: the run's own edit baked into another copy."""

    model: Path
    """The model to edit (an HF folder or a .gguf file)."""
    run: Path
    """Run folder with abliterated_model/ (or search/chosen.json)."""
    out: Path
    """Folder (or .gguf file) for the edited copy."""
    gguf_type: GgufType = "auto"
    quiet: bool = False
    """No progress bar."""


@dataclass(frozen=True, kw_only=True)
class DirectionReportOptions:
    """The options of ``ablbench abliterate direction-report``."""

    model: Path
    """The HF model folder the run was made from."""
    run: Path
    """Run folder with vectors/refusal_dir.pt and reports/choice.json."""
    prompts: int = 32
    """Refuse-bucket prompts for the base marker rate."""
    gen_tokens: int = 100
    """Greedy tokens per reply."""
    floor: Annotated[float, Parameter(name="--refusal-floor")] = 0.1
    """'Measurably refuses' = Wilson lower bound >= this."""
    batch_size: BatchSize = 8
    device: Device = "auto"
    dtype: Dtype = "auto"
    layers_path: LayersPath = None


@dataclass(frozen=True, kw_only=True)
class JudgeCheckOptions:
    """The options of ``ablbench abliterate judge-check``: the judge's agreement with the labelled set."""

    judge: JudgeSpec = None  # required: judge-check says so when it is missing
    out: Path | None = None
    """Write the agreement (with every item) as JSON here."""
    workers: int = 4
    """Requests in flight at once."""


@dataclass(frozen=True, kw_only=True)
class SearchOptions:
    """Every knob of the search (the budgets and prompts key the stored study)."""

    trials: int = 200
    """Complete trials wanted (heretic's default is 200)."""
    seed: int = 0
    """Seed of the TPE sampler."""
    startup: int | None = None
    """Random trials before TPE (default 30% of --trials)."""
    prompts: int | None = None
    """At most N eval prompts per bucket."""
    gen_tokens: int = 100
    """Greedy tokens for the refusal-marker objective."""
    format_tokens: int = 128
    """Greedy tokens of the first agent reply."""
    batch_size: BatchSize = 8
    kl_bound: float = 0.1
    """KL guard of the choice rule."""
    damage_tolerance: float = 0.1
    """Format guard of the choice rule."""
    trial: int | None = None
    """Choose this trial instead of the documented rule."""
    fresh: bool = False
    """Delete the stored study and start over."""
    device: Device = "auto"
    dtype: Dtype = "auto"
    layers_path: LayersPath = None


@dataclass(frozen=True, kw_only=True)
class PipelineOptions:
    """Every knob of the pipeline (each step's key hashes the ones it uses)."""

    eval_fraction: EvalFraction = 0.2
    seed: SplitSeed = 0
    disjoint_categories: Disjoint = False
    batch_size: BatchSize = 8
    device: Device = "auto"
    dtype: Dtype = "auto"
    layers_path: LayersPath = None
    variant: str = "diff"
    """diff or projected."""
    layer: float | None = None
    """Override the behavioural choice."""
    candidates: Annotated[list[int] | None, Parameter(help="Comma list of candidate layers.", converter=comma_list)] = None
    n_candidates: NCandidates = 6
    kl_bound: KlBound = 0.1
    choose_gen_tokens: Annotated[int, Parameter(name="--gen-tokens")] = 24
    """Tokens of the choice's marker generations (0: none)."""
    components: Annotated[tuple[str, ...], Parameter(converter=comma_list)] = COMPONENTS
    """What bake edits."""
    weight: float = 1.0
    """Bake strength (1.0 removes the direction)."""
    norm_preserve: bool = False
    """Norm-preserving bake."""
    eval_tokens: int = 128
    """Greedy tokens per evaluation generation."""
    eval_limit: int | None = None
    """At most N eval prompts per bucket."""
    search: Annotated[bool | None, Parameter(negative="--no-search")] = None
    """Optuna search instead of the one-layer choice (default: on with a GPU)."""
    search_trials: int = 200
    """Complete search trials (heretic: 200)."""
    search_prompts: int | None = None
    """Eval prompts per bucket per trial."""
    search_gen_tokens: Annotated[int, Parameter(name="--search-tokens")] = 100
    """Greedy tokens of the refusal objective."""
    search_format_tokens: int = 128
    """Tokens of the first agent reply."""
    report: Annotated[bool, Parameter(parse=False)] = True  # the direction report step (no flag)
    report_prompts: int = 32
    """Refuse prompts for the direction report."""
    report_tokens: int = 100
    """Greedy tokens for the direction report."""
    judge: JudgeSpec = None
    rd: Annotated[bool, Parameter(negative="--no-rd")] = True
    """Compute the SBERT drift (RD) in the evaluation (--no-rd skips it)."""
    force: Annotated[tuple[str, ...], Parameter(converter=comma_list)] = field(default_factory=tuple)
    """Comma list of steps to rerun (or 'all')."""
    show_progress: Annotated[bool, Parameter(name="--progress", negative="--quiet")] = True
    """Progress bars (--quiet: none)."""
