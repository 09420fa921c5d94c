"""A harbor job folder, for ``scripts/harbor_sweep.sh``: point a resumed job at the current server,
and count what its result files say.

Rules, in order:

1. ``retarget(config, url, model, agent)`` rewrites the job's ``config.json`` so a resumed job
   reaches a restarted server (it may listen elsewhere): ``api_base`` and ``model`` for the
   ablbench agent, ``api_base`` (with /v1) and ``openai/MODEL`` for harbor's terminus-2.
2. ``check(job)`` counts the trials, the graded ones (a verifier reward) and the passed ones;
   harbor exits 0 even when every trial errored, so no graded trial is an error naming the first.
3. ``python -m harness.harbor_job retarget CONFIG URL MODEL AGENT`` and
   ``python -m harness.harbor_job check JOB``: exit 0, or 1 with the message on stderr.
"""

from __future__ import annotations

import collections
import json
import sys
from pathlib import Path

from ablbench.atomic import write_text_atomic
from ablbench.errors import AblbenchError


def retarget(config: Path, url: str, model: str, agent: str) -> None:
    """Rule 1."""
    cfg = json.loads(config.read_text())
    for a in cfg.get("agents") or []:
        kw = a.setdefault("kwargs", {})
        if agent == "ablbench":
            kw["api_base"], kw["model"] = url, model
        else:
            kw["api_base"], a["model_name"] = url + "/v1", "openai/" + model
    write_text_atomic(config, json.dumps(cfg, indent=4))


def check(job: Path) -> str:
    """Rule 2: the summary line; raises ``AblbenchError`` when no trial reached its verifier."""
    trials = []
    for path in sorted(job.glob("*/result.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and "task_name" in data:
            trials.append(data)
    graded = [t for t in trials if (t.get("verifier_result") or {}).get("rewards")]
    passed = [t for t in graded if (t["verifier_result"]["rewards"].get("reward") or 0) >= 1]
    errors = collections.Counter((t.get("exception_info") or {}).get("exception_type") for t in trials)
    errors.pop(None, None)
    summary = job / "result.json"
    total = (json.loads(summary.read_text()) if summary.is_file() else {}).get("n_total_trials")
    line = (f"== harbor job {job.name}: {len(trials)}/{total or '?'} trials, {len(graded)} graded, "
            f"{len(passed)} passed" + (f"; errors: {dict(errors)}" if errors else ""))
    if not graded:
        first = next((t for t in trials if t.get("exception_info")), None)
        why = (f" (first: {first['exception_info']['exception_type']}: "
               f"{first['exception_info']['exception_message'][:300]})" if first else "")
        raise AblbenchError(f"{line}\nharbor_sweep: no trial of {job} reached its verifier{why} -- see {job}/*/trial.log")
    return line


def main(argv: list[str]) -> int:
    """Rule 3."""
    if argv[:1] == ["retarget"] and len(argv) == 5:
        retarget(Path(argv[1]), argv[2], argv[3], argv[4])
        return 0
    if argv[:1] == ["check"] and len(argv) == 2:
        try:
            print(check(Path(argv[1])))
        except AblbenchError as exc:
            line, _, why = str(exc).partition("\n")
            print(line, flush=True)
            print(why, file=sys.stderr)
            return 1
        return 0
    print("usage: python -m harness.harbor_job retarget CONFIG URL MODEL AGENT | check JOB", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
