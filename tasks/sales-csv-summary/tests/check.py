"""Recompute the expected summary from the verifier's pristine copy of the data."""

import csv
import re
from decimal import Decimal
from pathlib import Path

from checklib import check, main

HERE = Path(__file__).resolve().parent
OUT = Path("/app/summary.csv")


def expected():
    first = {}
    with open(HERE / "sales.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            if row["quantity"].strip() and row["order_id"] not in first:
                first[row["order_id"]] = row
    totals = {}
    for row in first.values():
        d = row["date"].strip()
        m = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})", d) or re.fullmatch(r"(\d{2})/(\d{2})/(\d{4})", d)
        y, mo = (int(m[1]), int(m[2])) if "-" in d else (int(m[3]), int(m[2]))
        if y != 2025 or mo > 3 or row["status"].strip().lower() != "completed":
            continue
        region = row["region"].strip().lower()
        value = Decimal(re.sub(r"[$,\s]", "", row["unit_price"])) * Decimal(row["quantity"].strip())
        n, total = totals.get(region, (0, Decimal(0)))
        totals[region] = (n + 1, total + value)
    return totals


WANT = expected()


def rows():
    with open(OUT, newline="") as fh:
        return list(csv.reader(fh))


@check
def header():
    assert rows()[0] == ["region", "orders", "revenue"], rows()[0]


@check
def regions_and_order_counts():
    got = {r[0]: int(r[1]) for r in rows()[1:]}
    assert got == {k: v[0] for k, v in WANT.items()}, got


@check
def revenue_two_decimals():
    for region, _, revenue in rows()[1:]:
        assert re.fullmatch(r"\d+\.\d{2}", revenue), f"bad revenue format {revenue!r}"
        assert Decimal(revenue) == WANT[region][1].quantize(Decimal("0.01")), (region, revenue)


@check
def sorted_by_revenue_desc():
    values = [Decimal(r[2]) for r in rows()[1:]]
    assert values == sorted(values, reverse=True) and len(values) == len(WANT), values


if __name__ == "__main__":
    raise SystemExit(main())
