#!/usr/bin/env bash
# Runs every test, including those against real sandbox hosts (systemd-nspawn
# containers with sshd, systemd and nginx). Needs Linux and root. Installs
# what the tests need first, on a stock Debian 12 / Ubuntu 24.04 too (where
# pip refuses the system interpreter, PEP 668):
#   - python3-venv when the interpreter cannot make a virtual environment;
#   - a virtual environment in $ROLLOUT_VENV (default .venv) with the package,
#     its test extras, and the pins of tests/constraints.txt;
#   - the sandbox's Debian packages (`console sandbox up --install-deps`), tmux and chromium;
#   - the cached sandbox image (/var/cache/rollout-console/image).
# Arguments go to pytest, e.g. `tests/run.sh tests/test_plan_loading.py -q`.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${ROLLOUT_VENV:-.venv}

apt_install() {
  echo "tests/run.sh: apt-get install $*" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "$@" >/dev/null
}

command -v python3 >/dev/null || apt_install python3
command -v tmux >/dev/null || apt_install tmux  # the real-terminal TUI tests
command -v chromium >/dev/null || apt_install chromium  # the HTML report opened in a real browser
command -v zsh >/dev/null || apt_install zsh    # tests/test_cli_completion.py: the real shells
command -v fish >/dev/null || apt_install fish
if [ ! -x "$venv/bin/python" ]; then
  if ! python3 -m venv "$venv" >/dev/null 2>&1; then  # Debian ships venv/ensurepip apart
    rm -rf "$venv"
    apt_install python3-venv
    python3 -m venv "$venv"
  fi
fi
"$venv/bin/python" -m pip install -q -c tests/constraints.txt -e ".[test]"
"$venv/bin/python" -c "
from sandbox import ensure_image
from sandbox.common import preflight
preflight(install_deps=True)
ensure_image()"
py="$venv/bin/python"
for arg in "$@"; do
  case "$arg" in tests*|*.py|*::*) exec "$py" -m pytest "$@" ;; esac  # tests named: run just those
done
# The whole suite, in lanes side by side (fast tests, the seed blocks, two
# fleets pulling the other real-host files from one queue): tests/lanes.py.
exec "$py" tests/lanes.py "$@"
