#!/bin/bash
set -euo pipefail
# append the entry
echo '127.0.0.1 db.local' >> /app/hosts
# show the file
cat /app/hosts
