#!/bin/bash
set -euo pipefail
# make the missing folder
mkdir -p /app/logs
# then the empty log file
touch /app/logs/app.log
# confirm the file is there and empty
ls -l /app/logs
