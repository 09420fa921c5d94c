#!/bin/bash
set -euo pipefail
# >> appends instead of overwriting
echo 'export EDITOR=vim' >> /app/env.sh
# look at the file now
cat /app/env.sh
