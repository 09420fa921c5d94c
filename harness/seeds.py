"""Sampling seeds per request: independent attempts, common random numbers across models.

The rule (``SEED_RULE``): the seed of the request for turn ``turn`` (1-based) of attempt
``attempt`` of task ``task`` in a run started with ``--seed S`` is the first 4 bytes, read
big-endian, of ``sha256("ablbench-seed-v1|S|task|attempt|turn")``, masked to 31 bits (every
server takes it as a signed or unsigned 32-bit number).

* The k attempts of one task get different seeds, so they are independent draws (pass@k,
  pass^k and every multi-attempt interval assume that).
* The same (task, attempt, turn) gets the same seed in every run with the same ``--seed``,
  whatever the model: the base and the edited run share their random numbers, which makes
  the paired comparison tighter.
* A retried request (network error, context trim) keeps its turn's seed.
"""

from __future__ import annotations

import hashlib

SEED_RULE = "sha256('ablbench-seed-v1|<run seed>|<task>|<attempt>|<turn>')[:4] big-endian & 0x7fffffff"


def request_seed(run_seed: int, task: str, attempt: int, turn: int) -> int:
    """The seed of one request (see the module doc)."""
    raw = f"ablbench-seed-v1|{int(run_seed)}|{task}|{int(attempt)}|{int(turn)}".encode()
    return int.from_bytes(hashlib.sha256(raw).digest()[:4], "big") & 0x7FFFFFFF
