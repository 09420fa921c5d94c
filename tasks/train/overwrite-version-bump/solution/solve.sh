#!/bin/bash
set -euo pipefail
# write the new version over the old one
echo 1.5.0 > /app/VERSION
# check the version file
cat /app/VERSION
