#!/bin/bash
set -euo pipefail
cat > /tmp/report.py <<'PY'
import collections, datetime, gzip, json, pathlib, re

LINE = re.compile(r'^(\S+) \S+ \S+ \[([^\]]+)\] "[^"]*" (\d{3}) (\d+|-)(?: "[^"]*" "[^"]*")?$')
rows = []
for path in sorted(pathlib.Path("/app/logs").glob("access.log*")):
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as fh:
        for line in fh:
            m = LINE.match(line.rstrip("\n"))
            if not m:
                continue
            try:
                ts = datetime.datetime.strptime(m.group(2), "%d/%b/%Y:%H:%M:%S %z")
            except ValueError:
                continue
            rows.append((m.group(1), int(m.group(3)), ts.astimezone(datetime.timezone.utc)))
status = collections.Counter(str(s) for _, s, _ in rows)
ips = collections.Counter(ip for ip, _, _ in rows)
hours = collections.Counter(t.strftime("%Y-%m-%dT%H") for _, _, t in rows)
report = {
    "total_requests": len(rows),
    "status_counts": dict(status),
    "top_ips": [{"ip": ip, "count": n} for ip, n in sorted(ips.items(), key=lambda kv: (-kv[1], kv[0]))[:3]],
    "server_error_rate": round(sum(1 for _, s, _ in rows if s >= 500) / len(rows), 4),
    "busiest_hour": sorted(hours.items(), key=lambda kv: (-kv[1], kv[0]))[0][0],
}
pathlib.Path("/app/report.json").write_text(json.dumps(report, indent=2))
PY
python3 /tmp/report.py
