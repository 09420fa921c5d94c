#!/bin/bash
set -euo pipefail
# make the whole path in one go
mkdir -p /app/build/output/release/bin
# list the new folders
find /app/build -type d
