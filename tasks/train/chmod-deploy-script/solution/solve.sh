#!/bin/bash
set -euo pipefail
# look at the current permissions
ls -l /app/bin/deploy.sh
# add the execute bit
chmod +x /app/bin/deploy.sh
