#!/bin/bash
set -euo pipefail
mkdir -p /app/certs && cd /app/certs
openssl req -x509 -newkey rsa:3072 -nodes -keyout server.key -out server.crt -days 730 \
  -subj "/C=DE/O=Ablbench Test/CN=ablbench.internal" \
  -addext "subjectAltName=DNS:ablbench.internal,DNS:*.ablbench.internal,IP:127.0.0.1" \
  -addext "basicConstraints=critical,CA:TRUE"
chmod 600 server.key
cat server.key server.crt > server.pem
openssl x509 -in server.crt -noout -fingerprint -sha256 > fingerprint.txt
