#!/bin/bash
set -euo pipefail
# duplicate it under the new name
cp /app/reports/march.csv /app/reports/april.csv
# read the duplicate back
cat /app/reports/april.csv
