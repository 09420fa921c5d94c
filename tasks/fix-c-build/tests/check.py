import math
import re
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path

from checklib import check, main

SRC = Path("/app/statlib")
WORK = Path(tempfile.mkdtemp()) / "statlib"


def build():
    if not WORK.exists():
        shutil.copytree(SRC, WORK)
        subprocess.run(["make", "clean"], cwd=WORK, capture_output=True, timeout=60)
    return subprocess.run(["make"], cwd=WORK, capture_output=True, text=True, timeout=60)


def stats(*args):
    out = subprocess.run([str(WORK / "bin" / "stats"), *args], capture_output=True, text=True, timeout=10)
    return out.returncode, out.stdout.strip()


@check
def make_builds_from_clean():
    res = build()
    assert res.returncode == 0, f"make failed: {res.stderr[-800:]}"
    assert (WORK / "bin" / "stats").is_file()


@check
def objects_built_per_source():
    build()
    for name in ("main", "stats", "util"):
        assert (WORK / "obj" / f"{name}.o").is_file(), f"obj/{name}.o missing"


@check
def sources_kept():
    for rel in ("src/main.c", "src/stats.c", "src/util.c", "include/stats.h", "include/util.h"):
        assert (SRC / rel).is_file(), f"{rel} missing"


@check
def statistics_are_right():
    build()
    for values in (["1", "2", "3", "4"], ["10"], ["-2.5", "7", "3", "3", "100"], ["0.1", "0.2"]):
        nums = [float(v) for v in values]
        sd = statistics.stdev(nums) if len(nums) > 1 else 0.0
        want = (f"count={len(nums)} mean={statistics.mean(nums):.3f} stddev={sd:.3f} "
                f"median={statistics.median(nums):.3f}")
        code, out = stats(*values)
        assert code == 0 and out == want, f"{values}: got {out!r}, want {want!r}"


@check
def rejects_non_numbers():
    build()
    code, _ = stats("1", "two")
    assert code != 0


@check
def many_values():
    build()
    nums = [math.sin(i) * 100 for i in range(1, 301)]
    code, out = stats(*[f"{x:.6f}" for x in nums])
    m = re.fullmatch(r"count=300 mean=(\S+) stddev=(\S+) median=(\S+)", out)
    assert code == 0 and m, out
    rounded = [float(f"{x:.6f}") for x in nums]
    assert abs(float(m[2]) - statistics.stdev(rounded)) < 0.002, out


if __name__ == "__main__":
    raise SystemExit(main())
