"""Build a small shop database: python3 make_db.py OUT.db SEED."""

import random
import sqlite3
import sys

out, seed = sys.argv[1], int(sys.argv[2])
rng = random.Random(seed)
db = sqlite3.connect(out)
db.executescript("""
CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, country TEXT);
CREATE TABLE products (id INTEGER PRIMARY KEY, title TEXT NOT NULL, unit_price REAL NOT NULL);
CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customers(id),
                     created_at TEXT NOT NULL, status TEXT NOT NULL);
CREATE TABLE order_items (order_id INTEGER REFERENCES orders(id), product_id INTEGER REFERENCES products(id),
                          quantity INTEGER NOT NULL, unit_price REAL NOT NULL);
""")
first = ["Ada", "Grace", "Linus", "Ken", "Barbara", "Dennis", "Margaret", "Alan", "Radia", "Edsger", "Frances", "John"]
last = ["Lovelace", "Hopper", "Torvalds", "Thompson", "Liskov", "Ritchie", "Hamilton", "Turing", "Perlman"]
names = rng.sample([f"{f} {s}" for f in first for s in last], 40)
for i, name in enumerate(names, 1):
    db.execute("INSERT INTO customers VALUES (?, ?, ?)", (i, name, rng.choice(["DE", "US", "FR", None])))
for i in range(1, 26):
    db.execute("INSERT INTO products VALUES (?, ?, ?)", (i, f"product-{i}", round(rng.uniform(1, 400), 2)))
for oid in range(1, 261):
    year = rng.choice([2023, 2024, 2024, 2024, 2025])
    created = f"{year}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d} {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00"
    status = rng.choice(["paid"] * 5 + ["refunded", "cancelled", "pending"])
    db.execute("INSERT INTO orders VALUES (?, ?, ?, ?)", (oid, rng.randint(1, 40), created, status))
    for _ in range(rng.randint(0, 4)):  # some orders have no items at all
        pid = rng.randint(1, 25)
        # the price paid is stored per item and may differ from today's list price
        price = round(rng.uniform(1, 400), 2)
        db.execute("INSERT INTO order_items VALUES (?, ?, ?, ?)", (oid, pid, rng.randint(1, 5), price))
db.commit()
db.close()
