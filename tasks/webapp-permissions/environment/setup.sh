#!/bin/bash
set -euo pipefail
groupadd www
groupadd dev
useradd -m -s /bin/bash deploy
useradd -m -s /bin/bash -G dev alice
useradd -m -s /bin/bash bob
mkdir -p /srv/webapp/{bin,config,public/css,uploads,logs}
echo '<h1>hello</h1>' > /srv/webapp/public/index.html
echo 'body { color: #333; }' > /srv/webapp/public/css/site.css
printf '#!/bin/bash\necho "starting webapp"\n' > /srv/webapp/bin/start.sh
printf '#!/bin/bash\necho "rotating logs"\n' > /srv/webapp/bin/rotate-logs.sh
echo 'PORT=8000' > /srv/webapp/config/app.conf
echo 'DB_PASSWORD=hunter2' > /srv/webapp/config/secret.env
echo 'old entry' > /srv/webapp/logs/app.log
touch /srv/webapp/uploads/.keep
# the mess to fix
chown -R root:root /srv/webapp
chmod -R 777 /srv/webapp
chown bob /srv/webapp/public/index.html
chmod 644 /srv/webapp/bin/start.sh
