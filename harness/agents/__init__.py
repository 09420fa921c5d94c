"""Every agent ablbench ships, behind one protocol (``ablbench.agent_api.Agent``).

- ``terminus``: the Terminus-style LLM agent (``harness.agents.terminus``);
- ``oracle``: runs the task's reference solution; ``nop``: does nothing
  (``harness.agents.simple``). With a correct task the oracle passes and nop fails.
- ``replay``: the Terminus loop answered by the reference solution, one action per step
  (``harness.agents.replay``): trajectories for SFT.

``harness.agents.harbor_agent`` wraps ``terminus`` as a harbor agent (``harbor run -a
harness.agents.harbor_agent:AblbenchTerminus``); it imports harbor, so only harbor's Python
(``.venv-harbor``) loads it and nothing here imports it.
"""

from __future__ import annotations

AGENT_NAMES = ("terminus", "oracle", "nop", "replay")
