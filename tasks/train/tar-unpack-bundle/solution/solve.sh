#!/bin/bash
set -euo pipefail
# see what the archive holds
tar -tf /app/bundle.tar
# make the target folder
mkdir -p /app/unpacked
# extract into it
tar -xf /app/bundle.tar -C /app/unpacked
# list what came out
find /app/unpacked -type f
