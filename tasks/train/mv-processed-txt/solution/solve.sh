#!/bin/bash
set -euo pipefail
# make the destination
mkdir -p /app/processed
# move the text files
mv /app/incoming/*.txt /app/processed/
# check both folders
ls /app/incoming /app/processed
