#!/bin/bash
set -euo pipefail
# read the list
cat /app/todo.md
# append the new item
echo '- buy milk' >> /app/todo.md
# read it again
cat /app/todo.md
