#!/bin/bash
set -euo pipefail
# quote the entry because of the colon and spaces
echo 'v1.2: fixed login bug' >> /app/CHANGELOG
# show the changelog
cat /app/CHANGELOG
