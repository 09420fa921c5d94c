#!/bin/bash
set -euo pipefail
# see which scripts exist
ls -l /app/scripts
# add the owner execute bit to all of them
chmod u+x /app/scripts/*.sh
# check the x bits
ls -l /app/scripts
