#!/bin/bash
set -euo pipefail
git config --global user.name "Dev"
git config --global user.email "dev@example.com"
git config --global init.defaultBranch main
mkdir -p /app/project && cd /app/project
git init -q
printf '# project\n\nA tiny parser.\n' > README.md
git add README.md && git commit -qm "Initial commit"
cat > parser.py <<'PY'
def parse(line):
    key, _, value = line.partition("=")
    return key.strip(), value.strip()
PY
git add parser.py && git commit -qm "Add parser"
cat > config.py <<'PY'
from parser import parse


def load(path):
    """Read KEY=VALUE lines, skipping blanks and # comments."""
    result = {}
    with open(path) as fh:
        for raw in fh:
            line = raw.strip()
            if line and not line.startswith("#"):
                key, value = parse(line)
                result[key] = value
    return result
PY
git add config.py && git commit -qm "Add config loader"
git reset -q --hard HEAD~1
printf '# project\n\nA tiny parser and config loader.\n' > README.md
git commit -qam "Update README"
git gc -q
