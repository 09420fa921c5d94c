"""ablbench's docker hardening as a harbor environment: ``harbor run -e runners.harbor_environment:AblbenchDocker``.

harbor's own docker environment refuses tasks with ``allow_internet = false`` unless its egress
sidecar can run (it needs an nftables kernel probe image from a registry); ablbench's bundled
tasks all set it. This environment is harbor's docker environment (Compose v2, same build,
exec, file transfer and clean-up) with the built-in runner's rules (``runners.environment``)
added as one extra compose file. It imports harbor, so only harbor's Python loads it. Rules:

1. A no-network phase gets ``network_mode: none``: the container has a loopback device only.
   Nothing is ever opened silently: an allowlist policy is refused by harbor's own check (this
   environment cannot enforce one), and so is a task whose phases differ (no-network agent,
   networked verifier), since the policy is fixed when the container starts.
2. Every container gets the runner's hardening: no privileges, the capabilities
   :data:`runners.environment.DROPPED_CAPS` dropped, ``no-new-privileges``, a pids limit, an init
   process, and the labels ``ablbench.harbor=1`` and ``ablbench.trial_dir=<harbor trial folder>``
   (so a test or a sweep finds its own containers).
3. The extra compose file lives in a private temporary folder and is removed when the
   environment stops; cpu and memory limits stay harbor's (from task.toml).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from harbor.environments.capabilities import EnvironmentCapabilities
from harbor.environments.docker.docker import DockerEnvironment
from harbor.models.task.config import NetworkMode

from runners.environment import DROPPED_CAPS

PIDS_LIMIT = 4096


class AblbenchDocker(DockerEnvironment):
    """harbor's docker environment with ``--network none`` for no-network tasks and the runner's hardening."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._ablbench_dir: tempfile.TemporaryDirectory[str] | None = None
        self._ablbench_compose: Path | None = None
        super().__init__(*args, **kwargs)
        self._ablbench_dir = tempfile.TemporaryDirectory(prefix="ablbench-harbor-")
        self._ablbench_compose = Path(self._ablbench_dir.name) / "ablbench-hardening.json"
        self._ablbench_compose.write_text(json.dumps({"services": {"main": self.hardening()}}, indent=2))

    @classmethod
    def _egress_control_kernel_support(cls) -> bool:
        return False  # no egress sidecar: no-network is enforced with network_mode none (rule 1)

    @property
    def capabilities(self) -> EnvironmentCapabilities:
        """harbor's docker capabilities, plus no-network (rule 1); no allowlist, no policy changes."""
        return super().capabilities.model_copy(update={"disable_internet": True})

    def hardening(self) -> dict[str, Any]:
        """The compose settings added to the main service (rules 1 and 2)."""
        main: dict[str, Any] = {
            "privileged": False,
            "cap_drop": list(DROPPED_CAPS),
            "security_opt": ["no-new-privileges:true"],
            "pids_limit": PIDS_LIMIT,
            "init": True,
            "labels": {"ablbench.harbor": "1", "ablbench.trial_dir": str(Path(self.trial_paths.trial_dir).resolve())},
        }
        if self.network_policy.network_mode == NetworkMode.NO_NETWORK:
            main["network_mode"] = "none"
        return main

    @property
    def _docker_compose_paths(self) -> list[Path]:
        paths = list(super()._docker_compose_paths)
        if self._ablbench_compose is not None:
            paths.append(self._ablbench_compose)
        return paths

    async def stop(self, delete: bool) -> None:
        try:
            await super().stop(delete)
        finally:
            if self._ablbench_dir is not None:
                self._ablbench_dir.cleanup()
                self._ablbench_dir = None
                self._ablbench_compose = None
