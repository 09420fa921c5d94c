#!/bin/bash
set -euo pipefail
# check the source report
cat /app/reports/march.csv
# duplicate it under the new name
cp /app/reports/march.csv /app/reports/april.csv
