#!/bin/bash
set -euo pipefail
# look at the current content
cat /app/env.sh
# >> appends instead of overwriting
echo 'export EDITOR=vim' >> /app/env.sh
