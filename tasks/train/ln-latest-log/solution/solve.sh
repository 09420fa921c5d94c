#!/bin/bash
set -euo pipefail
# link to the newest log
ln -s /app/logs/2024-05-01.log /app/latest.log
# check where the link points
ls -l /app/latest.log
