#!/usr/bin/env bash
# Every benchmark behind the README's figures, one after another on an
# otherwise idle machine (as root: the sandbox ones boot real hosts). Each
# script writes its raw output to bench/results/<date>-<commit>/; run this on
# a clean tree, at the commit the README describes.
#   bench/run_all.sh                    # everything (about 40 minutes on 2 cores)
#   REPEATS=2 REPEATS_SHORT=6 bench/run_all.sh   # fewer repeats
set -uo pipefail
cd "$(dirname "$0")/.."
r3=${REPEATS:-3} r10=${REPEATS_SHORT:-10}
py=${PYTHON:-python3}
status=0
run() { echo "== $*"; "$@" || { echo "!! failed: $*"; status=1; }; }

run env ROLLOUT_SANDBOX_NET=4 "$py" bench/vs_ansible.py --rounds "$r3"
run env ROLLOUT_SANDBOX_NET=4 "$py" bench/traffic_switch.py --repeats "$r3"
ROLLOUT_SANDBOX_NET=4 "$py" -m console sandbox down >/dev/null 2>&1
run env ROLLOUT_SANDBOX_NET=3 "$py" bench/vs_ansible.py --hosts 50 --rounds 1 --load-rps 50
run env ROLLOUT_SANDBOX_NET=3 "$py" bench/probe_cost.py --hosts 50 --rounds "$r10"
ROLLOUT_SANDBOX_NET=3 "$py" -m console sandbox down >/dev/null 2>&1
run "$py" bench/ssh_fanout.py --hosts 50 --repeats "$r3"
run "$py" bench/startup_and_journal.py --repeats "$r10"
run "$py" bench/fleet_scale.py --repeats "$r3" --timeout 300
run "$py" bench/tui_bench.py --sizes 1000,10000
run "$py" bench/tui_tmux.py --sizes 1000,10000 --repeats "$r3"
run "$py" bench/judge_power.py --trials 100
exit $status
