#!/bin/bash
# lane.sh NET: replay this lane's cases on fleet NET, before and after in turn
n=$1; i=0
while read -r case; do
  if [ $(( i % 4 )) -eq $(( n - 4 )) ]; then
    name=$(echo "$case" | sed 's#bench/results/##; s#/#_#g')
    if [ $(( (i / 4) % 2 )) -eq 0 ]; then order="before after"; else order="after before"; fi
    for side in $order; do
      tree=/tmp/wt-$side
      [ -f /tmp/replay/$side/$name/runs.jsonl ] && continue
      ( cd $tree && ROLLOUT_SANDBOX_NET=$n PYTHONPATH=$tree timeout 900 .venv/bin/python bench/soak.py --replay /work/main/$case \
          --out /tmp/replay/$side/$name --work /tmp/rollout-replay-$n < /dev/null > /tmp/replay/log-$side-$name.txt 2>&1 )
      echo "$(date +%T) net$n $side $name rc=$?" >> /tmp/replay/progress.txt
    done
  fi
  i=$((i+1))
done < /tmp/cases.txt
echo "$(date +%T) net$n done" >> /tmp/replay/progress.txt
