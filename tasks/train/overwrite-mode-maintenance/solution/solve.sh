#!/bin/bash
set -euo pipefail
# look at the current mode
cat /app/mode.cfg
# replace the old word
echo maintenance > /app/mode.cfg
# read the new mode
cat /app/mode.cfg
