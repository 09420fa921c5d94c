#!/bin/bash
set -euo pipefail
# count the lines; reading from stdin keeps the file name out of the output
wc -l < /app/data/cities.txt > /app/line_count.txt
# check the saved number
cat /app/line_count.txt
