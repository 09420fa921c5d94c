#!/bin/bash
set -euo pipefail
# list the inbox
ls /app/inbox
# count the entries
ls /app/inbox | wc -l > /app/inbox_count.txt
# show the saved count
cat /app/inbox_count.txt
