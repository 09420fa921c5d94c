#!/bin/bash
set -euo pipefail
# symlink the production file
ln -s /app/configs/production.yaml /app/config.yaml
# read through the link
cat /app/config.yaml
