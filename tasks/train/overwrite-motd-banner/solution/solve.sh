#!/bin/bash
set -euo pipefail
# single quotes keep the ! literal
echo 'Good evening, team!' > /app/motd
# show the banner
cat /app/motd
