#!/bin/bash
set -euo pipefail
# touch all three at once
touch /app/slots/a.txt /app/slots/b.txt /app/slots/c.txt
# list them
ls -l /app/slots
