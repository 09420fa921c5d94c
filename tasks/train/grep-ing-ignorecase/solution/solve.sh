#!/bin/bash
set -euo pipefail
# -i ignores case
grep -i ing /app/words.txt > /app/ing.txt
# show the matches
cat /app/ing.txt
