#!/bin/bash
set -euo pipefail
# count the lines of the source file
wc -l < /app/src/main.py > /app/loc.txt
# print what was stored
cat /app/loc.txt
