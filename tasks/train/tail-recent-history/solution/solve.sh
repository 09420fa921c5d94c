#!/bin/bash
set -euo pipefail
# tail takes the bottom lines
tail -n 3 /app/history.txt > /app/recent.txt
# show them
cat /app/recent.txt
