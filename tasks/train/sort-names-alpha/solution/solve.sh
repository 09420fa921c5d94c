#!/bin/bash
set -euo pipefail
# sort into the new file
sort /app/names.txt > /app/names_sorted.txt
# show it
cat /app/names_sorted.txt
