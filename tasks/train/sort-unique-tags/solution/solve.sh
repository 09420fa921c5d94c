#!/bin/bash
set -euo pipefail
# look at the tags
cat /app/tags.txt
# -u drops the repeats
sort -u /app/tags.txt > /app/unique_tags.txt
# show the unique tags
cat /app/unique_tags.txt
