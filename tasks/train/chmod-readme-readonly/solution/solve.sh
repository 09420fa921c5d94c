#!/bin/bash
set -euo pipefail
# apply mode 444
chmod 444 /app/shared/readme.txt
# show the result
stat -c '%a %n' /app/shared/readme.txt
