#!/bin/bash
set -euo pipefail
# make the link
ln -s /usr/bin/python3 /app/bin/python
# try it
/app/bin/python --version
