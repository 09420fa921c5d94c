#!/bin/bash
set -euo pipefail
# the target folder is missing, so make it first
mkdir -p /app/backup
# copy the config file into it
cp /app/config/app.conf /app/backup/
# check that the copy arrived
ls -l /app/backup
