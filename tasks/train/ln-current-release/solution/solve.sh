#!/bin/bash
set -euo pipefail
# see the releases
ls /app/releases
# link name comes last
ln -s /app/releases/v2 /app/current
# check where it points
ls -l /app/current
