#!/bin/bash
set -euo pipefail
# an empty marker file is all that is needed
touch /app/.ready
# check it is there
ls -la /app
