#!/usr/bin/env bash
# Runs every test, including those against real sandbox hosts (systemd-nspawn
# containers with sshd, systemd and nginx). Needs Linux and root. Installs
# what the tests need first: Debian packages, the Python package with its
# test extras, and the cached sandbox image (/var/cache/rollout-console/image).
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v systemd-nspawn >/dev/null || need+=(systemd-container)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v ip >/dev/null || need+=(iproute2)
command -v ssh >/dev/null || need+=(openssh-client)
command -v ssh-keygen >/dev/null || need+=(openssh-client)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
python3 -m pip install -q -e ".[test]"
python3 -c "from inventory.sandbox import ensure_image; ensure_image()"
python3 -m pytest "$@"
