#!/bin/bash
set -euo pipefail
cd /app/project
lost=$(git log -g --format='%H %s' | awk '$2=="Add" && $3=="config" && $4=="loader" {print $1; exit}')
git cherry-pick "$lost"
