#!/bin/bash
set -euo pipefail
# mv renames in place
mv /app/photo.jpeg /app/photo.jpg
# list the folder
ls /app
