#!/usr/bin/env bash
# Installs the Debian packages the test suite drives for real (idempotent, no prompts).
# Services are never left running: the tests start their own copies on loopback ports.
set -euo pipefail
want=("$@")
[ ${#want[@]} -gt 0 ] || want=(swaks postfix redis-server)
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" && continue
  # A command of that name from elsewhere counts too (nodesource's nodejs bundles npm and
  # conflicts with Debian's npm package).
  [ "$p" = npm ] && command -v npm >/dev/null && continue
  missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "install-system-deps: need root to apt-get install ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# Keep apt from starting the daemons it installs (postfix, redis, clamav, rspamd).
printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
chmod 755 /usr/sbin/policy-rc.d
trap 'rm -f /usr/sbin/policy-rc.d' EXIT
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
apt-get update -qq || true
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts nothing under policy-rc.d, but be sure no packaged daemon squats on a port.
for svc in postfix redis-server clamav-daemon clamav-freshclam rspamd; do
  pkill -x "$svc" 2>/dev/null || true
done
