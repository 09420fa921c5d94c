"""Refusal-direction abliteration: contrast sets, activation capture, directions, layer choice,
bake (:mod:`abliterate.bake`), search (:mod:`abliterate.search`) and evaluation
(:mod:`abliterate.evaluate`). Imports nothing from ``harness`` or ``runners``.

Steps (each reads and writes plain files in a run folder): :mod:`abliterate.contrast`,
:mod:`abliterate.capture`, :mod:`abliterate.directions`, :mod:`abliterate.choose`,
:mod:`abliterate.bake.run`, :mod:`abliterate.evaluate.run`; :mod:`abliterate.pipeline` runs them all.
Layers (import-linter): pipeline > control > search > choose | direction_report > evaluate |
bake > the shared helpers (model, infer, capture, prompts, fsio, errors, ...).
"""
