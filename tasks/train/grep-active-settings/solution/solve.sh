#!/bin/bash
set -euo pipefail
# read the config
cat /app/config.ini
# -v keeps the lines that do not match
grep -v '^#' /app/config.ini > /app/active.ini
# print the active settings
cat /app/active.ini
