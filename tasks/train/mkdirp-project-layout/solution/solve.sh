#!/bin/bash
set -euo pipefail
# make all of them with their parents
mkdir -p /app/newproj/docs /app/newproj/tests /app/newproj/src/pkg
# list the layout
find /app/newproj -type d
