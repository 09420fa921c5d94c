"""Recompute the report from the verifier's own pristine copy of the logs."""

import gzip
import json
import re
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from checklib import check, main

HERE = Path(__file__).resolve().parent
FIELDS = re.compile(
    r'(?P<ip>\S+) (\S+) (\S+) \[(?P<ts>[^\]]*)\] "(?P<req>[^"]*)" (?P<status>\d{3}) (?P<size>\d+|-)'
    r'( "[^"]*" "[^"]*")?')


def entries():
    for name in ("access.log", "access.log.1", "access.log.2.gz"):
        raw = (HERE / "logs" / name).read_bytes()
        if name.endswith(".gz"):
            raw = gzip.decompress(raw)
        for line in raw.decode().splitlines():
            m = FIELDS.fullmatch(line)
            if m is None:
                continue
            try:
                when = datetime.strptime(m["ts"], "%d/%b/%Y:%H:%M:%S %z")
            except ValueError:
                continue
            yield m["ip"], int(m["status"]), when.astimezone(UTC)


ROWS = list(entries())


def report():
    return json.loads(Path("/app/report.json").read_text())


@check
def report_has_exact_keys():
    keys = set(report())
    want = {"total_requests", "status_counts", "top_ips", "server_error_rate", "busiest_hour"}
    assert keys == want, f"keys are {sorted(keys)}"


@check
def total_requests():
    assert report()["total_requests"] == len(ROWS), report()["total_requests"]


@check
def status_counts():
    want = {str(k): v for k, v in Counter(s for _, s, _ in ROWS).items()}
    got = report()["status_counts"]
    assert got == want, f"got {got}"


@check
def top_ips():
    counts = Counter(ip for ip, _, _ in ROWS)
    want = [{"ip": ip, "count": n} for ip, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:3]]
    got = report()["top_ips"]
    assert got == want, f"got {got}"


@check
def server_error_rate():
    want = round(sum(s >= 500 for _, s, _ in ROWS) / len(ROWS), 4)
    got = report()["server_error_rate"]
    assert isinstance(got, float | int) and abs(got - want) < 1e-9, f"got {got!r}"


@check
def busiest_hour_in_utc():
    hours = Counter(t.strftime("%Y-%m-%dT%H") for _, _, t in ROWS)
    best = max(hours.values())
    want = min(h for h, n in hours.items() if n == best)
    assert report()["busiest_hour"] == want, f"got {report()['busiest_hour']!r}"


if __name__ == "__main__":
    raise SystemExit(main())
