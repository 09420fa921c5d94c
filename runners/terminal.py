"""A tmux session inside a task environment, driven through its ``exec`` (``ablbench.agent_api.Environment``).

The agent types keystrokes into a real bash running in tmux (160x40, large history), like
Terminus-2, but instead of always sleeping ``duration`` seconds it returns as soon as the shell
is idle again, and never later than ``duration`` (capped at 60 s):

* Prompt counting: the shell runs a ``PROMPT_COMMAND`` that bumps a counter file each time a
  prompt is printed. A batch of keystrokes holding N line ends is done when N prompts have
  appeared, or when at least one has and the shell is the pane's foreground process and the
  counter has stayed put for about half a second (multi-line commands such as here-docs print
  fewer prompts than line ends).
* Keystrokes without a line end typed at an idle prompt return after a short settle.
* Interactive programs (python REPL, sqlite3, pdb...), shells without our counter, and lines bash
  rejects before running anything (``!`` history errors): the pane is polled every 80 ms, and
  the wait ends early when the cursor sits after a known prompt (``>>>``, ``$``, ``sqlite>``,
  ...) on a new line and stays there for two polls. Otherwise it waits the whole duration.

All waiting happens in ONE ``docker exec`` per keystroke batch (a small POSIX sh loop polling
every 20 ms inside the container), so the overhead per command is one exec round trip.
Observation = the pane output since the previous observation (absolute line bookkeeping over
``history_size`` + ``cursor_y``), cut to head + tail within ``observation_bytes``.
"""

from __future__ import annotations

import contextlib
import shlex
import time

from ablbench.agent_api import Environment, SendResult
from ablbench.errors import AblbenchError
from runners.tmux_keys import is_key_name

MAX_DURATION_S = 60.0
#: bytes per ``tmux send-keys`` call: tmux drops commands over ~16 KB
CHUNK_BYTES = 8000
#: bytes of keystroke arguments per ``docker exec`` (the kernel caps argv at ~2 MB)
EXEC_ARG_BYTES = 512_000
SHELLS = ("bash", "sh", "dash", "zsh", "ash", "ksh", "fish")


class TerminalError(AblbenchError):
    """The container cannot host the tmux terminal."""


# Runs inside the container: send the keystrokes, then wait (see the module doc).
# $1 session  $2 state dir  $3 expected prompts  $4 limit (centiseconds)  $5 mode (lit|key|none)
# $6 counter works (1|0, informative)  $7.. keystroke chunks
_SEND_SH = r"""
S=$1; D=$2; expect=$3; limit=$4; mode=$5; pc=$6; shift 6
tmux has-session -t "$S" 2>/dev/null || { echo "nosession"; exit 3; }
cs() { read -r u _ < /proc/uptime; echo "${u%.*}${u#*.}"; }
t0=$(cs)
read -r old < "$D/n" 2>/dev/null || old=0
# the session can die between two looks (the keystrokes ended the shell): that is idle too
set_pos() { p=$(tmux display -p -t "$S" '#{history_size} #{cursor_y} #{cursor_x} #{pane_current_command}' 2>/dev/null) \
  && [ -n "$p" ] || { echo "idle-exit ${d:-0}"; exit 0; }; set -- $p; abs=$(($1 + $2)); cy=$2; cx=$3; fgc=$4; }
set_pos; abs0=$abs; fg0=$fgc
for k in "$@"; do
  if [ "$mode" = key ]; then tmux send-keys -t "$S" "$k"; else tmux send-keys -t "$S" -l -- "$k"; fi
done
[ "$mode" = none ] && { echo "sent 0"; exit 0; }
is_shell() { case "$1" in bash|sh|dash|zsh|ash|ksh|fish|-bash|-sh) return 0;; esac; return 1; }
last=-1; stable=0; rlast=""; i=0
# fewer prompts than line ends (here-docs) settle only after ~0.5 s without a new prompt: a shorter
# settle fires between two queued commands, before bash has read the next line
need=2; [ "$expect" -gt 0 ] && need=25
while :; do
  read -r n < "$D/n" 2>/dev/null || n=$old
  d=$((n - old))
  if [ "$expect" -gt 0 ] && [ "$d" -ge "$expect" ]; then echo "idle-prompt $d"; exit 0; fi
  if [ "$d" -gt 0 ] || { [ "$expect" -eq 0 ] && is_shell "$fg0"; }; then
    if [ "$n" = "$last" ]; then stable=$((stable + 1)); else stable=0; last=$n; fi
    if [ "$stable" -ge "$need" ]; then
      set_pos
      if is_shell "$fgc"; then echo "idle-settle $d"; exit 0; fi
      stable=0
    fi
  elif [ $((i % 4)) -eq 3 ]; then
    tmux has-session -t "$S" 2>/dev/null || { echo "idle-exit $d"; exit 0; }
    set_pos
    if [ "$abs" != "$abs0" ]; then
      line=$(tmux capture-pane -p -t "$S" -S "$cy" -E "$cy")
      case "$line" in
        *'>>>'|*'...'|*'(Pdb)'|*'sqlite>'|*'mysql>'|*'=#'|*'=>'|*'In ['*']:'|*'$'|*'#'|*'>'|*'(END)')
          if [ "$cx" -ge "${#line}" ]; then
            if [ "$rlast" = "$abs:$cx:$line" ]; then echo "idle-repl $d"; exit 0; fi
            rlast="$abs:$cx:$line"
          fi;;
        *) rlast="";;
      esac
    fi
  fi
  if [ $(( $(cs) - t0 )) -ge "$limit" ]; then echo "timeout $d"; exit 0; fi
  i=$((i + 1))
  sleep 0.02
done
"""

# $1 session  $2 mark (absolute line of the previous observation's cursor)
_OBSERVE_SH = r"""
S=$1; mark=$2
set -- $(tmux display -p -t "$S" '#{history_size} #{cursor_y}') || exit 3
hs=$1; cy=$2
start=$((mark - hs))
[ "$start" -gt "$cy" ] && start=0
[ "$start" -lt "-$hs" ] && start="-$hs"
echo "$hs $cy"
tmux capture-pane -p -J -t "$S" -S "$start" -E "$cy"
"""


def _chunks(text: str, limit: int = CHUNK_BYTES) -> list[str]:
    """Split ``text`` into pieces of at most ``limit`` UTF-8 bytes (never inside a character)."""
    out, cur, size = [], [], 0
    for ch in text:
        b = len(ch.encode("utf-8", "surrogatepass"))
        if size + b > limit and cur:
            out.append("".join(cur))
            cur, size = [], 0
        cur.append(ch)
        size += b
    if cur:
        out.append("".join(cur))
    return out


def cut_head_tail(text: str, limit_bytes: int) -> str:
    """Keep the first and last ``limit_bytes / 2`` bytes of ``text``, marking the cut."""
    raw = text.encode("utf-8", "replace")
    if len(raw) <= limit_bytes:
        return text
    half = limit_bytes // 2
    head = raw[:half].decode("utf-8", "ignore")
    tail = raw[-half:].decode("utf-8", "ignore")
    return f"{head}\n[... output limited to {limit_bytes} bytes; {len(raw) - 2 * half} bytes omitted ...]\n{tail}"


def expected_prompts(keystrokes: str) -> int:
    """How many shell prompts a keystroke batch should produce (one per line end)."""
    if is_key_name(keystrokes.strip()):
        return 1 if keystrokes.strip() in ("Enter", "C-m", "C-j") else 0
    return keystrokes.count("\n") + keystrokes.count("\r")


class TmuxTerminal:
    """A tmux-driven bash in ``env`` (see the module doc); implements ``ablbench.agent_api.Terminal``."""

    def __init__(
        self, env: Environment, *, session: str = "ablbench", width: int = 160, height: int = 40,
        history_limit: int = 100_000, observation_bytes: int = 10_000, shell: str = "bash --login",
    ) -> None:
        self.env = env
        self.session = session
        self.width, self.height = width, height
        self.history_limit = history_limit
        self.observation_bytes = observation_bytes
        self.shell = shell
        self.state_dir = f"/tmp/.ablbench-tmux-{session}"
        self.counter_ok = False
        self._mark = 0
        self.restarts = 0

    # ------------------------------------------------------------------ plumbing
    def _exec(self, argv: list[str], env: dict[str, str] | None = None) -> tuple[int, str]:
        res = self.env.exec(argv, None, env=env)
        return (-1 if res.exit_code is None else res.exit_code), res.output

    def _sh(self, script: str, *args: str) -> tuple[int, str]:
        return self._exec(["sh", "-c", script, "sh", *args])

    # ------------------------------------------------------------------ lifecycle
    def start(self, wait_s: float = 10.0) -> str:
        """Start (or restart) the session; returns the initial screen."""
        rc, _ = self._sh("command -v tmux >/dev/null 2>&1")
        if rc != 0:
            image = self.env.image or "?"
            raise TerminalError(
                f"tmux is not installed in container {self.env.name} (image {image}): "
                "`ablbench run` with the terminus agent installs it in a cached derived image; elsewhere add "
                "tmux to the task's Dockerfile or use --base-image-map FROM=IMAGE_WITH_TMUX"
            )
        d = shlex.quote(self.state_dir)
        prompt_cmd = (
            f'__abl_n=0; read -r __abl_n 2>/dev/null < {d}/n; '
            f'echo $((__abl_n + 1)) 2>/dev/null > {d}/n'
        )
        shell = self.shell if self._has("bash") else "sh"
        script = (
            f"mkdir -p {d} && echo 0 > {d}/n && "
            f"(tmux kill-session -t {shlex.quote(self.session)} 2>/dev/null; true) && "
            f"tmux -f /dev/null start-server \\; set-option -g history-limit {int(self.history_limit)} \\; "
            f"new-session -d -s {shlex.quote(self.session)} -x {self.width} -y {self.height} {shlex.quote(shell)} \\; "
            f"set-option -t {shlex.quote(self.session)} status off"
        )
        rc, out = self._exec(["sh", "-c", script], env={"PROMPT_COMMAND": prompt_cmd})
        if rc != 0:
            raise TerminalError(f"could not start tmux in container {self.env.name}: {out.strip()[:300]}")
        # the first prompt proves the counter works; without it we rely on screen polling
        t_end = time.monotonic() + wait_s
        self.counter_ok = False
        while time.monotonic() < t_end:
            rc, out = self._sh(f"cat {d}/n")
            if rc == 0 and out.strip().isdigit() and int(out.strip()) >= 1:
                self.counter_ok = True
                break
            time.sleep(0.05)
        self._mark = 0
        return self.observe()

    def _has(self, program: str) -> bool:
        return self._sh(f"command -v {shlex.quote(program)} >/dev/null 2>&1")[0] == 0

    def close(self) -> None:
        """Kill the session (the container is the trial's to remove)."""
        with contextlib.suppress(Exception):  # best effort: the container may be gone already
            self._exec(["tmux", "kill-session", "-t", self.session])

    # ------------------------------------------------------------------ keystrokes
    def send(self, keystrokes: str, duration: float = 1.0, *, deadline: float | None = None) -> SendResult:
        """Type ``keystrokes``; return once the shell is idle again, at most ``duration`` s later
        (capped at 60 s and at the time left before ``deadline``, a monotonic value)."""
        t0 = time.monotonic()
        limit = min(max(float(duration), 0.0), MAX_DURATION_S)
        if deadline is not None:
            limit = max(0.0, min(limit, deadline - t0))
        keystrokes = keystrokes.replace("\x00", "")
        if is_key_name(keystrokes.strip()):
            mode, pieces = "key", [keystrokes.strip()]
        else:
            mode, pieces = "lit", _chunks(keystrokes)
        groups: list[list[str]] = [[]]
        size = 0
        for p in pieces:
            if size + len(p.encode("utf-8", "replace")) > EXEC_ARG_BYTES and groups[-1]:
                groups.append([])
                size = 0
            groups[-1].append(p)
            size += len(p.encode("utf-8", "replace"))
        expect = expected_prompts(keystrokes)
        out = ""
        for gi, group in enumerate(groups):
            last = gi == len(groups) - 1
            args = [self.session, self.state_dir, str(expect), str(int(limit * 100)),
                    mode if last else "lit", "1" if self.counter_ok else "0"]
            if not last:  # earlier groups: just type, the wait comes with the last one
                args[3] = "0"
            rc, out = self._sh(_SEND_SH, *args, *group)
            if rc == 3:  # the shell exited (e.g. the agent typed `exit`): start a fresh one
                self.restarts += 1
                self.start()
                rc, out = self._sh(_SEND_SH, *args, *group)
            if rc != 0:
                raise TerminalError(f"tmux send-keys failed in {self.env.name}: {out.strip()[:300]}")
        how = (out.strip().split() or ["timeout"])[0]
        return SendResult(how if how.startswith(("idle", "timeout")) else "timeout", time.monotonic() - t0)

    # ------------------------------------------------------------------ observation
    def observe(self) -> str:
        """Pane output since the previous observation, cut to head + tail."""
        rc, out = self._sh(_OBSERVE_SH, self.session, str(self._mark))
        if rc != 0:  # the shell exited (the agent typed `exit` or C-d): give it a fresh one
            self.restarts += 1
            return "[the shell exited; a new shell was started]\n" + self.start()
        header, _, body = out.partition("\n")
        try:
            hs, cy = (int(x) for x in header.split())
            self._mark = hs + cy
        except ValueError:
            return cut_head_tail(out, self.observation_bytes)
        return cut_head_tail(body.rstrip("\n"), self.observation_bytes)

    def screen(self) -> str:
        """The visible screen right now."""
        return self._exec(["tmux", "capture-pane", "-p", "-J", "-t", self.session])[1].rstrip("\n")
