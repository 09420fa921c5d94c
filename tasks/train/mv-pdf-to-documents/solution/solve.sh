#!/bin/bash
set -euo pipefail
# move it into the existing folder
mv /app/downloads/report.pdf /app/documents/
# confirm
ls /app/documents /app/downloads
