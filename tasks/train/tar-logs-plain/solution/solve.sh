#!/bin/bash
set -euo pipefail
# plain tar, no compression flag
tar -cf /app/logs.tar -C /app logs
# list what went in
tar -tf /app/logs.tar
