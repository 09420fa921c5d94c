"""Ending an agent for good before the verifier runs, and recording what it left running.

Rules, in order:

1. The agent gets its container through a revocable docker client (``revocable_container``):
   once the trial revokes it, every docker call the agent's thread makes fails, so an agent
   abandoned after its grace period can no longer type, copy files or start commands.
2. ``end_agent_commands`` then kills, inside the container, the agent's ``docker exec``
   commands still in flight (exec roots: processes whose parent is outside the container,
   ppid 0, other than pid 1) with all their descendants.
3. It lists every process still alive: none of them was started by the verifier, which has
   not started yet. Each gets a kind: ``container`` (pid 1 and the ``sleep infinity`` keeping
   the container up), ``terminal`` (the tmux server and its panes' shells, the agent's
   terminal) or ``agent`` (anything else: ``nohup``/``setsid``/``&`` processes the agent left).
   The ``agent`` ones are the trial's ``leftover_procs``. They are recorded, not killed: TB2
   tasks may rely on a service the agent started.
"""

from __future__ import annotations

import threading
from typing import Any

import docker
import docker.errors
from docker.models.containers import Container

SHELLS = frozenset({"bash", "sh", "dash", "zsh", "ash", "ksh", "fish", "-bash", "-sh"})

# Runs as its own exec (bash): kill the exec roots' trees except this exec's, then list what is left.
# Output: one line per process, "pid<TAB>ppid<TAB>cmdline" (NULs of /proc/PID/cmdline as spaces).
_END_AND_LIST_SH = r"""
me=$$; wrapper=$PPID
declare -A pp
scan() {
  pp=()
  for d in /proc/[0-9]*; do
    p=${d#/proc/}
    read -r s < "$d/stat" 2>/dev/null || continue
    r=${s##*) }; set -- $r; pp[$p]=$2
  done
}
scan
kill_set=()
for p in "${!pp[@]}"; do
  [ "${pp[$p]}" = 0 ] && [ "$p" != 1 ] && [ "$p" != "$me" ] && [ "$p" != "$wrapper" ] && kill_set+=("$p")
done
grow=1
while [ "$grow" = 1 ]; do
  grow=0
  for p in "${!pp[@]}"; do
    case " ${kill_set[*]} " in *" $p "*) continue;; esac
    case " ${kill_set[*]} " in *" ${pp[$p]} "*) kill_set+=("$p"); grow=1;; esac
  done
done
if [ "${#kill_set[@]}" -gt 0 ]; then
  kill -KILL "${kill_set[@]}" 2>/dev/null
  echo "killed ${kill_set[*]}"
  sleep 0.2
fi
scan
for p in "${!pp[@]}"; do
  [ "$p" = "$me" ] || [ "$p" = "$wrapper" ] || [ "${pp[$p]}" = "$me" ] && continue
  c=$(tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null) || continue
  printf '%s\t%s\t%s\n' "$p" "${pp[$p]}" "${c% }"
done
"""


class _RevocableAPIClient(docker.APIClient):
    """An APIClient sharing another's connection pools whose every request fails once revoked."""

    _revoked: threading.Event

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:  # noqa: D102 - requests API
        if self._revoked.is_set():
            raise docker.errors.DockerException("the trial has stopped this agent: no more docker calls")
        return super().request(method, url, *args, **kwargs)


def revocable_container(container: Container) -> tuple[Container, threading.Event]:
    """(the same container seen through a revocable client, the event that revokes it)."""
    revoked = threading.Event()
    api = object.__new__(_RevocableAPIClient)
    api.__dict__.update(container.client.api.__dict__)  # same base URL, adapters (pools), headers, version
    api._revoked = revoked
    client = object.__new__(docker.DockerClient)
    client.api = api
    return client.containers.prepare_model(container.attrs), revoked


def _kind(pid: int, ppid: int, cmdline: str, tmux_pids: set[int]) -> str:
    argv0 = cmdline.split(" ", 1)[0].rsplit("/", 1)[-1] if cmdline else ""
    if pid == 1 or (ppid == 1 and cmdline == "sleep infinity"):
        return "container"
    if argv0 == "tmux" or (ppid in tmux_pids and argv0 in SHELLS):
        return "terminal"
    return "agent"


def parse_listing(output: str) -> tuple[list[int], list[dict[str, Any]]]:
    """(pids killed, processes left as {pid, ppid, cmdline, kind}) from the script's output."""
    killed: list[int] = []
    rows: list[tuple[int, int, str]] = []
    for line in output.splitlines():
        if line.startswith("killed "):
            killed = [int(x) for x in line.split()[1:] if x.isdigit()]
            continue
        parts = line.split("\t", 2)
        if len(parts) == 3 and parts[0].isdigit() and parts[1].isdigit():
            rows.append((int(parts[0]), int(parts[1]), parts[2]))
    tmux = {pid for pid, _pp, cmd in rows if cmd.split(" ", 1)[0].rsplit("/", 1)[-1] == "tmux"}
    procs = [
        {"pid": pid, "ppid": ppid, "cmdline": cmd[:500], "kind": _kind(pid, ppid, cmd, tmux)}
        for pid, ppid, cmd in sorted(rows)
    ]
    return sorted(killed), procs


def end_agent_commands(env: Any) -> tuple[list[int], list[dict[str, Any]]]:
    """Kill the agent's in-flight exec commands in ``env`` (a TaskEnvironment); list what remains.

    Returns (pids killed, processes left); see the module doc.
    """
    res = env.exec(_END_AND_LIST_SH, timeout_s=30)
    return parse_listing(res.output)
