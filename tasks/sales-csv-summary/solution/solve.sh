#!/bin/bash
set -euo pipefail
python3 - <<'PY'
import csv
from datetime import date, datetime
from decimal import Decimal

seen, totals = set(), {}
with open("/app/data/sales.csv", newline="") as fh:
    for row in csv.DictReader(fh):
        if not row["quantity"].strip() or row["order_id"] in seen:
            continue
        seen.add(row["order_id"])
        raw = row["date"].strip()
        day = datetime.strptime(raw, "%Y-%m-%d" if "-" in raw else "%d/%m/%Y").date()
        if not (date(2025, 1, 1) <= day <= date(2025, 3, 31)):
            continue
        if row["status"].strip().lower() != "completed":
            continue
        price = Decimal(row["unit_price"].replace("$", "").replace(",", "").strip())
        region = row["region"].strip().lower()
        orders, revenue = totals.get(region, (0, Decimal(0)))
        totals[region] = (orders + 1, revenue + price * int(row["quantity"]))
with open("/app/summary.csv", "w", newline="") as fh:
    w = csv.writer(fh)
    w.writerow(["region", "orders", "revenue"])
    for region, (orders, revenue) in sorted(totals.items(), key=lambda kv: -kv[1][1]):
        w.writerow([region, orders, f"{revenue:.2f}"])
PY
