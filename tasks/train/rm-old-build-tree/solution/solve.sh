#!/bin/bash
set -euo pipefail
# -r removes the folder with its contents
rm -r /app/old_build
# check it is gone
ls /app
