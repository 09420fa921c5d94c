#!/bin/bash
set -euo pipefail
# -n sorts by numeric value
sort -n /app/scores.txt > /app/scores_sorted.txt
# show the order
cat /app/scores_sorted.txt
