"""The Terminus agent's budget and sampling defaults, written once.

Rules, in order:

1. Every default here is the value the user's runs used; ``RunOptions`` (``ablbench run`` and
   the sweep), ``AgentConfig`` (``harness.agents.terminus``) and harbor's ``--ak`` settings
   (``harness.agents.harbor_agent``) read them from here and never repeat them.
2. This module imports nothing, so the CLI can read it at start-up.
"""

MAX_TURNS = 20  # model replies per trial
MAX_TOKENS = 4096  # tokens per model reply
TEMPERATURE = 0.7
TOP_P = 0.95
SEED = 0  # the run seed every request's seed derives from (harness.seeds)
