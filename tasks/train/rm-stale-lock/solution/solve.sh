#!/bin/bash
set -euo pipefail
# see what is in the run folder
ls /app/run
# delete only the lock
rm /app/run/app.lock
# only the pid file should remain
ls /app/run
