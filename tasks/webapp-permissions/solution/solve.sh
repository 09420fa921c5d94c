#!/bin/bash
set -euo pipefail
cd /srv/webapp
chown -R deploy:www /srv/webapp
find /srv/webapp -type d -exec chmod 2750 {} +
chmod 2770 /srv/webapp/uploads /srv/webapp/logs
find /srv/webapp -type f -exec chmod 640 {} +
chmod 750 /srv/webapp/bin/*
chmod 600 /srv/webapp/config/secret.env
usermod -aG www alice
