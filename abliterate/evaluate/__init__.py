"""Evaluate: did refusals drop, and what else moved (markers, judge, statistics, drift).

Rules, in order:
1. :func:`abliterate.evaluate.run.evaluate` compares a base and an edited model side by side.
2. Modules import one way: ``run`` > ``judge`` | ``drift`` > ``judge_prompt`` | ``markers`` |
   ``refusal_stats``. The last three are cheap (no torch) and are used by the harness's
   behaviour report, the layer choice and the search.
3. This ``__init__`` imports nothing, so ``abliterate.evaluate.markers`` stays cheap to import.
"""
