#!/bin/bash
set -euo pipefail
# single quotes keep the comma and ! as they are
echo 'Thanks for the tea, Ana!' >> /app/guestbook.txt
# read the guest book
cat /app/guestbook.txt
