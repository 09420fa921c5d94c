#!/bin/bash
set -euo pipefail
cat > /app/top_customers.sql <<'SQL'
SELECT c.name AS name, COUNT(*) AS orders, ROUND(SUM(v.value), 2) AS total
FROM (
    SELECT o.id, o.customer_id, COALESCE(SUM(i.quantity * i.unit_price), 0) AS value
    FROM orders o LEFT JOIN order_items i ON i.order_id = o.id
    WHERE o.status = 'paid' AND o.created_at >= '2024-01-01' AND o.created_at < '2025-01-01'
    GROUP BY o.id
) v
JOIN customers c ON c.id = v.customer_id
GROUP BY c.id
HAVING COUNT(*) >= 2
ORDER BY total DESC, name ASC
LIMIT 10;
SQL
sqlite3 /app/shop.db < /app/top_customers.sql
