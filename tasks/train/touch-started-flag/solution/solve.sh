#!/bin/bash
set -euo pipefail
# touch the flag file
touch /app/run/started.flag
