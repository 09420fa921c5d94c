#!/bin/bash
set -euo pipefail
# make the destination
mkdir -p /app/dataset
# -z for gzip, -C for the target
tar -xzf /app/data.tgz -C /app/dataset
# check
ls /app/dataset
