"""Refusal-direction abliteration: contrast sets, activation capture, directions, layer choice,
bake (``bake*.py``) and evaluation. Imports nothing from ``harness`` or ``runners``.

Steps (each reads and writes plain files in a run folder): :mod:`abliterate.contrast`,
:mod:`abliterate.capture`, :mod:`abliterate.directions`, :mod:`abliterate.choose`,
:mod:`abliterate.bake`, :mod:`abliterate.evaluate`; :mod:`abliterate.pipeline` runs them all.
"""
