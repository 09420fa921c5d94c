#!/bin/bash
set -euo pipefail
# touch the flag file
touch /app/run/started.flag
# see that the flag exists
ls -l /app/run
