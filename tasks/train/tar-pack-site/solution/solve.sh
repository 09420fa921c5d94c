#!/bin/bash
set -euo pipefail
# -C keeps /app out of the member names
tar -czf /app/site.tar.gz -C /app site
# list the archive
tar -tzf /app/site.tar.gz
