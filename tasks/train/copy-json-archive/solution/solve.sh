#!/bin/bash
set -euo pipefail
# make the archive folder
mkdir -p /app/archive
# copy the JSON file there with the new name
cp /app/data/users.json /app/archive/users-2024.json
# show the archived copy
cat /app/archive/users-2024.json
