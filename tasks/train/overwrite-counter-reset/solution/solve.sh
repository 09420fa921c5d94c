#!/bin/bash
set -euo pipefail
# overwrite the old value
echo 0 > /app/counter.txt
# check the counter
cat /app/counter.txt
