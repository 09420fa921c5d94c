#!/bin/bash
set -euo pipefail
# peek at the table
cat /app/data/table.csv
# keep line 1 only
head -n 1 /app/data/table.csv > /app/header.txt
# show the header file
cat /app/header.txt
