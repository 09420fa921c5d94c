"""Search: choose an edit by a heretic-style multi-objective Optuna search, evaluated with hooks.

Rules, in order:
1. :func:`abliterate.search.run.run_search` is the entry point; it reads a run folder's contrast
   and direction stacks and writes ``RUN/search/`` (study, trials, Pareto front, chosen trial).
2. Modules import one way: ``run`` > ``front`` | ``objectives`` | ``study`` > ``space``.
3. Below it: the bake's options (``bake.profile``), the evaluation's markers and statistics, the
   hooks (``writer_hooks``); no checkpoint is written while searching.
"""
