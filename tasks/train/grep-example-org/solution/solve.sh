#!/bin/bash
set -euo pipefail
# fixed-string match on the domain
grep -F '@example.org' /app/contacts.txt > /app/example_org.txt
# show the matches
cat /app/example_org.txt
