#!/bin/bash
set -euo pipefail
# change the folder mode
chmod 755 /app/public
# verify it
stat -c '%a' /app/public
