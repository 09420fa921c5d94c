#!/bin/bash
set -euo pipefail
# see what is in the notes folder
ls -l /app/notes
# copy the file next to itself under the backup name
cp /app/notes/todo.txt /app/notes/todo.txt.bak
