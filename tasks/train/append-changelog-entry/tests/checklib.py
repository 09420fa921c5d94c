"""Tiny stdlib test runner for ablbench task verifiers.

Each check is a function decorated with ``@check``; ``main()`` runs them all, writes a
CTRF report to /logs/verifier/ctrf.json and the reward (1 if every check passed, else 0)
to /logs/verifier/reward.txt.
"""

import json
import os
import sys
import time
import traceback

LOG_DIR = os.environ.get("VERIFIER_LOG_DIR", "/logs/verifier")
CHECKS = []


def check(fn):
    """Register a check; it passes unless it raises."""
    CHECKS.append(fn)
    return fn


def _write(name, text):
    tmp = os.path.join(LOG_DIR, f".{name}.tmp")
    with open(tmp, "w") as fh:
        fh.write(text)
    os.replace(tmp, os.path.join(LOG_DIR, name))


def main():
    os.makedirs(LOG_DIR, exist_ok=True)
    start = int(time.time() * 1000)
    results = []
    for fn in CHECKS:
        t0 = time.time()
        entry = {"name": fn.__name__, "status": "passed"}
        try:
            fn()
            print(f"PASSED {fn.__name__}")
        except Exception as exc:  # a failing check, whatever it raised
            entry["status"] = "failed"
            entry["message"] = f"{type(exc).__name__}: {exc}"[:2000]
            entry["trace"] = traceback.format_exc()[-4000:]
            print(f"FAILED {fn.__name__}: {entry['message']}")
        entry["duration"] = int((time.time() - t0) * 1000)
        results.append(entry)
    passed = sum(r["status"] == "passed" for r in results)
    report = {"results": {
        "tool": {"name": "ablbench-checklib"},
        "summary": {"tests": len(results), "passed": passed, "failed": len(results) - passed,
                    "pending": 0, "skipped": 0, "other": 0,
                    "start": start, "stop": int(time.time() * 1000)},
        "tests": results,
    }}
    _write("ctrf.json", json.dumps(report, indent=2) + "\n")
    ok = bool(results) and passed == len(results)
    _write("reward.txt", "1\n" if ok else "0\n")
    print(f"{passed}/{len(results)} checks passed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
