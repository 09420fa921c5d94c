#!/bin/bash
set -euo pipefail
# >> also starts a missing file
echo 'deploy finished' >> /app/logs/deploy.log
# read the log
cat /app/logs/deploy.log
