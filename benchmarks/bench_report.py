"""Size and load time of the HTML report for the user's 89-task example (base 3, SFT 3, abliterated 7).

Two cases, both built by ``ablbench analyze --html`` and loaded from disk in headless Chromium:

- ``summary only``: the fixture as it is (tests/fixtures/analysis/user_report: master_summary.csv
  files, no trial folders);
- ``with trajectories``: the same 3 x 89 outcomes written as full results folders (trace.jsonl,
  result.json, verifier.log, run.json) with the project's writers, 1-20 turns per trial and
  terminal-like observations of 1-12 kB, so every trial can be opened.

Load time is the page's own ``performance.now()`` when its script has rendered everything
(navigation start to ready), the median of ``--loads`` fresh loads. "open" is the time from a
click on a cell to that trial's turns on screen (gzip+base64 decode included).

    .venv/bin/python benchmarks/bench_report.py [--loads 5] [--keep DIR]
"""

from __future__ import annotations

import argparse
import csv
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from report_helpers import Browser, TrialPlan, Turn, chrome_missing, screen, write_run  # noqa: E402

FIXTURE = ROOT / "tests" / "fixtures" / "analysis" / "user_report"
RUNS = [("base", "base"), ("sft", "sft"), ("abl", "abliterated")]
WORDS = ["error", "warning", "compiling", "linking", "ok", "done", "pip", "install", "cargo", "build", "make", "test", "pass", "fail", "src", "lib", "include", "main.c", "util.py", "config.yaml", "requirements.txt", "Downloading", "Collecting", "Successfully", "installed"]


def _observation(rng: random.Random) -> str:
    lines = []
    for _ in range(rng.randint(15, 150)):
        words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12)))
        lines.append(f"[{rng.randint(0, 9999):04d}] {words} 0x{rng.getrandbits(32):08x}")
    return screen(*lines)


def _turns(rng: random.Random) -> list[Turn]:
    out = []
    for n in range(rng.randint(1, 20)):
        cmds = [f"{rng.choice(['ls -la', 'cat', 'python3', 'make', 'grep -rn'])} {rng.choice(WORDS)} # step {n}\n"
                for _ in range(rng.randint(0, 3))]
        out.append(Turn(cmds, _observation(rng), reasoning=" ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 400)))
                        or None, warnings=["trailing comma repaired"] if rng.random() < 0.1 else []))
    return out


def write_trajectories(dest: Path) -> list[Path]:
    """The fixture's 3 x 89 outcomes as full results folders with trajectories."""
    rng = random.Random(89)
    folders = []
    for src, name in RUNS:
        with (FIXTURE / src / "master_summary.csv").open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        plans = [TrialPlan(r["task"], r["outcome"], _turns(rng)) for r in rows]
        folders.append(write_run(dest / name, name, plans, model=name, tasks_root=dest / "no-tasks-here"))
    return folders


def build(runs: list[Path], names: list[str], out: Path) -> float:
    t = time.monotonic()
    subprocess.run([sys.executable, "-c", "from harness.cli import main; main()", "analyze", *map(str, runs),
                    "--names", ",".join(names), "--html", str(out)], check=True, cwd=ROOT, capture_output=True)
    return time.monotonic() - t


def measure(browser: Browser, html: Path, loads: int) -> tuple[list[int], float]:
    d = browser.driver
    ready = []
    for _ in range(loads):
        d.get("about:blank")
        d.get(html.as_uri())
        t_end = time.monotonic() + 30
        while d.execute_script("return document.documentElement.dataset.ready") != "1":
            if time.monotonic() > t_end:
                raise RuntimeError(f"{html}: the page did not become ready in 30 s")
            time.sleep(0.02)
        ready.append(int(d.execute_script("return document.documentElement.dataset.readyMs")))
    open_ms = d.execute_async_script("""
        const done = arguments[0];
        document.getElementById('tabbtn-matrix').click();
        const cell = [...document.querySelectorAll('button.cell')].find(c => c.dataset.key.startsWith('2|fix-git|'));
        const t0 = performance.now();
        cell.click();
        const check = () => document.querySelector('#trial-panel .trial-title') &&
          document.getElementById('trial-panel').dataset.key === cell.dataset.key && !document.getElementById(
          'trial-panel').hasAttribute('aria-busy') ? done(performance.now() - t0) : setTimeout(check, 2);
        check();""")
    return ready, float(open_ms)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--loads", type=int, default=5, help="fresh page loads per case (median reported)")
    ap.add_argument("--keep", type=Path, help="write the reports and results here instead of a temp folder")
    args = ap.parse_args()
    why = chrome_missing()
    if why:
        print(f"bench_report: {why}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="ablbench-bench-report-") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        names = [n for _, n in RUNS]
        cases = [("summary only", [FIXTURE / s for s, _ in RUNS])]
        t = time.monotonic()
        cases.append(("with trajectories", write_trajectories(work / "results")))
        print(f"wrote 3 x 89 trials with trajectories in {time.monotonic() - t:.1f} s")
        browser = Browser()
        try:
            print(f"{'case':<20} {'trials':>6} {'turns':>6} {'HTML size':>10} {'build':>7} {'load (median)':>14} "
                  f"{'load (max)':>11} {'open trial':>11}")
            for label, runs in cases:
                html = work / f"report_{label.replace(' ', '_')}.html"
                built = build(runs, names, html)
                ready, open_ms = measure(browser, html, args.loads)
                turns = sum(1 for r in runs for p in r.glob("*/*/trace.jsonl") for line in p.open() if '"turn":' in line)
                print(f"{label:<20} {3 * 89:>6} {turns:>6} {html.stat().st_size / 1e6:>8.2f} MB {built:>6.1f}s "
                      f"{statistics.median(ready):>11} ms {max(ready):>8} ms {open_ms:>8.0f} ms")
        finally:
            browser.quit()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
