#!/bin/bash
set -euo pipefail
# list the log folder
ls /app/logs
# make the destination folder
mkdir -p /app/saved_logs
# copy only the .log files
cp /app/logs/*.log /app/saved_logs/
# verify which files were saved
ls /app/saved_logs
