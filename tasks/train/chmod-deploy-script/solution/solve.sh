#!/bin/bash
set -euo pipefail
# add the execute bit
chmod +x /app/bin/deploy.sh
# look at the new permissions
ls -l /app/bin/deploy.sh
