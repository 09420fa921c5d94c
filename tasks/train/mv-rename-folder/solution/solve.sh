#!/bin/bash
set -euo pipefail
# rename the folder
mv /app/tmp_results /app/results
# check its content
ls /app/results
