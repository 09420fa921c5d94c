#!/bin/bash
set -euo pipefail
# count the bytes
wc -c < /app/msg.txt > /app/size.txt
# show the number
cat /app/size.txt
