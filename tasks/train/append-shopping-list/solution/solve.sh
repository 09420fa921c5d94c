#!/bin/bash
set -euo pipefail
# append it; the file is made if needed
echo bread >> /app/shopping.txt
# show the list
cat /app/shopping.txt
