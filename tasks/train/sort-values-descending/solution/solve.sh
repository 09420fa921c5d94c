#!/bin/bash
set -euo pipefail
# -r reverses, -n compares as numbers
sort -rn /app/values.txt > /app/desc.txt
# show the result
cat /app/desc.txt
