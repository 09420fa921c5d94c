#!/bin/bash
set -euo pipefail
# count words from stdin so only the number is printed
wc -w < /app/docs/intro.txt > /app/words.txt
# show it
cat /app/words.txt
