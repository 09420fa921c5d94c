#!/bin/bash
set -euo pipefail
# append the name
echo grace >> /app/users.txt
# show the user list
cat /app/users.txt
