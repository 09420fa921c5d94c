#!/bin/bash
set -euo pipefail
# set owner-only read/write
chmod 600 /app/secrets/token.txt
# confirm the new mode
ls -l /app/secrets/token.txt
