#!/bin/bash
set -euo pipefail
# copy the file next to itself under the backup name
cp /app/notes/todo.txt /app/notes/todo.txt.bak
# both files should be listed now
ls -l /app/notes
