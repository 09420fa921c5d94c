#!/bin/bash
set -euo pipefail
# > drops the old note
echo 'Owner: Maria, ops team' > /app/OWNER
# show the note
cat /app/OWNER
