"""How long ``ablbench plan`` takes for the user's case (89 tasks, base 3/89, +4.5 pp).

Printed: wall and CPU seconds per k and in all, the studies per k, and the load average at the
start (timings on a shared machine say little without it). Rerunnable anywhere:

    .venv/bin/python benchmarks/bench_plan.py [--studies 2000] [--attempts 1,3,5,10]
"""

from __future__ import annotations

import argparse
import os
import time

from harness.analysis import plan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=2000)
    parser.add_argument("--attempts", default="1,3,5,10")
    parser.add_argument("--tasks", type=int, default=89)
    args = parser.parse_args()
    a, b = plan.beta_from_mean(3 / 89, 2.0)
    model = plan.RateModel("beta", a, b)
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for k in (int(x) for x in args.attempts.split(",")):
        w, c = time.perf_counter(), time.process_time()
        row = plan.plan_table(model, args.tasks, [k], 0.045, studies=args.studies, seed=0)[0]
        print(f"k = {k:>2}: power {100 * row.power:5.1f}%, detectable {100 * (row.mde or float('nan')):4.1f} pp; "
              f"{time.perf_counter() - w:5.2f} s wall, {time.process_time() - c:5.2f} s CPU")
    print(f"all: {time.perf_counter() - wall0:.2f} s wall, {time.process_time() - cpu0:.2f} s CPU "
          f"({args.studies} studies per k, {args.tasks} tasks)")


if __name__ == "__main__":
    main()
