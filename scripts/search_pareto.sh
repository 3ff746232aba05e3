#!/bin/sh
# The cost-constrained search end to end on this CPU (README "The method"): search the supernet
# of configs/search/budget.yaml without a budget and at each budget given (mJ per 260x346
# frame), retrain every decoded genotype and the hand-picked cells (handpicked.yaml) at the same widths
# (configs/train/search_retrain.yaml), evaluate each on the held-out seed-901 recording and
# draw the Pareto plot. Usage: sh scripts/search_pareto.sh [BUDGET ...]   (default: 0.3 0.22 0.16)
# The randomised recordings come from configs/train/shipped_mixed.yaml's data.generate.
set -e
PY=${PY:-.venv/bin/python}
BUDGETS=${*:-0.3 0.22 0.16}
[ -f data/synth/test901_data.hdf5 ] || $PY -m data_tools.synth --out data/synth --name test901 --seconds 6 --seed 901
$PY - <<'PYEOF'
import os
import yaml
from evstereo.training.runner import generate_recordings
generate_recordings(yaml.safe_load(open("configs/train/shipped_mixed.yaml"))["data"]["generate"])
os.makedirs("runs", exist_ok=True)
yaml.safe_dump(yaml.safe_load(open("configs/model/handpicked.yaml"))["genotype"], open("runs/handpicked_genotype.yaml", "w"))
PYEOF
points=""
for b in none $BUDGETS; do
  extra=""; [ "$b" = none ] || extra="module.energy_budget_mj=$b"
  # the README's width-2 table was made with the hinge penalty (before "target" became the default)
  $PY -m apps.search --config configs/search/budget.yaml $extra module.budget_penalty=hinge out=runs/search_budget_$b -q
  points="$points budget_$b=runs/search_budget_$b/genotype.yaml"
done
for p in $points handpicked_cells=runs/handpicked_genotype.yaml; do
  name=${p%%=*}; genotype=${p#*=}
  $PY -m apps.train --config configs/train/search_retrain.yaml model.genotype=$genotype out=runs/retrain_$name -q
  $PY -m apps.evaluate --checkpoint runs/retrain_$name/model.pt --data data/synth/test901_data.hdf5 \
      --out runs/retrain_$name/test901.json -q
done
$PY -m apps.pareto $(for p in $points handpicked_cells=x; do n=${p%%=*}; echo "$n=runs/retrain_$n/test901.json"; done) \
    --out docs/images/search_pareto.png --title "searched at budgets (mJ/frame) vs the hand-picked cells, widths 2, seed 901, retrained 2 x 150 batches"
