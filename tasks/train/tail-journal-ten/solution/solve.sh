#!/bin/bash
set -euo pipefail
# take the last ten lines
tail -n 10 /app/journal.txt > /app/tail10.txt
# count them to be sure
wc -l /app/tail10.txt
