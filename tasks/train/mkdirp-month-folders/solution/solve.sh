#!/bin/bash
set -euo pipefail
# both paths with their parents
mkdir -p /app/data/2024/01 /app/data/2024/02
# check
ls /app/data/2024
