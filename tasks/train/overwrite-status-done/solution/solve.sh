#!/bin/bash
set -euo pipefail
# a single > replaces what the file held
echo done > /app/status.txt
# read it back
cat /app/status.txt
