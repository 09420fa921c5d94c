#!/bin/bash
set -euo pipefail
# filter the matching lines
grep ERROR /app/logs/app.log > /app/errors.txt
# show them
cat /app/errors.txt
