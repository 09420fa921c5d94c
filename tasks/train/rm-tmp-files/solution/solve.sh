#!/bin/bash
set -euo pipefail
# list the cache
ls /app/cache
# a glob removes just the .tmp files
rm /app/cache/*.tmp
# check what is left
ls /app/cache
