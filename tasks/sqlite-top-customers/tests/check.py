"""Run the agent's query on the shipped database and on unseen ones; compare with Python."""

import sqlite3
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

from checklib import check, main

HERE = Path(__file__).resolve().parent
QUERY = Path("/app/top_customers.sql")


def fresh_db(seed):
    path = Path(tempfile.mkdtemp()) / f"shop-{seed}.db"
    subprocess.run([sys.executable, str(HERE / "make_db.py"), str(path), str(seed)], check=True)
    return path


def expected(path):
    db = sqlite3.connect(path)
    value = defaultdict(float)
    paid = {}
    for oid, cid in db.execute("SELECT id, customer_id FROM orders WHERE status = 'paid' "
                               "AND substr(created_at, 1, 4) = '2024'"):
        paid[oid] = cid
        value[oid] += 0.0
    for oid, qty, price in db.execute("SELECT order_id, quantity, unit_price FROM order_items"):
        if oid in paid:
            value[oid] += qty * price
    per = defaultdict(lambda: [0, 0.0])
    for oid, cid in paid.items():
        per[cid][0] += 1
        per[cid][1] += value[oid]
    names = dict(db.execute("SELECT id, name FROM customers"))
    rows = [(names[cid], n, round(total, 2)) for cid, (n, total) in per.items() if n >= 2]
    rows.sort(key=lambda r: (-r[2], r[0]))
    return rows[:10]


def actual(path):
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    cur = db.execute(QUERY.read_text())
    cols = [d[0] for d in cur.description]
    return cols, [tuple(r) for r in cur.fetchall()]


def same(got, want):
    assert len(got) == len(want), f"{len(got)} rows, want {len(want)}: {got[:3]}"
    for g, w in zip(got, want, strict=True):
        assert g[0] == w[0] and g[1] == w[1] and abs(g[2] - w[2]) < 0.006, f"row {g}, want {w}"


@check
def columns_are_name_orders_total():
    cols, _ = actual(fresh_db(2024))
    assert cols == ["name", "orders", "total"], cols


@check
def right_answer_on_the_shipped_data():
    db = fresh_db(2024)
    same(actual(db)[1], expected(db))


@check
def right_answer_on_unseen_data():
    for seed in (7, 99):
        db = fresh_db(seed)
        same(actual(db)[1], expected(db))


@check
def shipped_database_untouched():
    count = sqlite3.connect("/app/shop.db").execute("SELECT COUNT(*) FROM orders").fetchone()[0]
    assert count == 260, count


if __name__ == "__main__":
    raise SystemExit(main())
