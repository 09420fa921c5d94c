#!/bin/bash
set -euo pipefail
# head takes the top lines
head -n 5 /app/logs/server.log > /app/first5.txt
# print the saved lines
cat /app/first5.txt
