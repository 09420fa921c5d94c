#!/bin/bash
set -euo pipefail
# the name has spaces and parentheses, so quote it
rm '/app/notes/draft (copy).txt'
# check what is left
ls /app/notes
