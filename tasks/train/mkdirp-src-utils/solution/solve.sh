#!/bin/bash
set -euo pipefail
# -p makes every missing parent
mkdir -p /app/project/src/utils
# show the tree
find /app/project
