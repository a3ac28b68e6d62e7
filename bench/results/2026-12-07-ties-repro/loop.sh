#!/bin/bash
# run rolling example N times under curl load + CPU hogs; keep output of non-zero exits
cd /work/main
INV=/var/lib/rollout-console/sandbox/inventory.yaml
for h in 1 2; do (while :; do :; done) & hogs="$hogs $!"; done
(while :; do curl -s -o /dev/null http://10.77.0.10/v1/chat; done) & load=$!
for i in $(seq 1 $1); do
  v=$([ $((i % 2)) = 1 ] && echo 2.0.0 || echo 1.0.0)
  .venv/bin/python -m console --plan examples/rolling.yaml --inventory $INV --release $v --headless > /tmp/repro/out-$i.txt 2>&1
  rc=$?
  echo "run $i exit $rc"
done
kill $load $hogs
