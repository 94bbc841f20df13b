#!/bin/bash
# The planning model on 8x the data: 8000 generated planning episodes (5600 train), encoded by a pack's
# perception, the default recipe's world model trained 8000 steps, the pack's critic with its energy
# averaged over the rollout (critic_reduce=mean), 5 steps of context. Then flat / hierarchical / random
# planners on held-out episodes of the same suite (100 near-goal and 100 far-goal test episodes).
#   bash evals/bench/planning_scale.sh [OUT_DIR] [PERCEPTION] [PACK]
# PERCEPTION: the perception training folder whose encoder makes the features (default: the v9
# pack's, runs/pack9/perception/final); PACK: the pack whose perception/ the planner reads (the same
# encoder, exported). Stages whose output exists in OUT_DIR are kept (delete a folder to redo it).
# Paths must not contain spaces or quotes (they are pasted into Python strings).
# Numbers: docs/bench_world_model.md, "Planning on 8x the data".
set -e
cd "$(dirname "$0")/../.."
R=${1:-runs/plan8k}
PERC=${2:-runs/pack9/perception/final}
PACK=${3:-runs/pack9/pack}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
. evals/bench/recipe_lib.sh  # ovr, keep
WM_OVR=$(ovr planning_world_model_overrides)
# A separately seeded suite: its train split trains, val chose the variant, test is reported.
keep $R/data/episodes || .venv/bin/cogarch generate --suite planning --n 8000 --seed 1002 --out $R/data
keep $R/features/planning_features.json || .venv/bin/python -c "
from cogarch.modules.cost.cli import PerceptionEncoder, write_planning_features
write_planning_features('$R/data', PerceptionEncoder('$PERC', 4, tokens=True), '$R/features')"
# The default recipe's world model (its overrides), trained 8000 steps instead of 2000.
keep $R/wmC/final || .venv/bin/cogarch train world_model --config configs/world_model/tiny.yaml \
  data.features_dir=$R/features/world_model model.latent_dim=192 model.action_dim=2 trainer.out_dir=$R/wmC \
  trainer.seed=0 $WM_OVR trainer.max_steps=8000 trainer.ckpt_every=1000
# The pack's own keypoint critic (trained on its 700 episodes), its energy averaged over the
# rollout (critic_reduce=mean), and 5 observed steps of context instead of 3: chosen on 30 near-goal
# val episodes of this suite (docs/bench_world_model.md).
rm -rf $R/pack && mkdir -p $R/pack/planning
cp -r $PACK/perception $R/pack/perception
cp -r $R/wmC/final $R/pack/planning/world_model
.venv/bin/python -c "
import json
from cogarch.modules.cost.model import CostModel
cost = CostModel.from_pretrained('$PACK/planning/cost')
cost.config.critic_reduce = 'mean'
cost.save_pretrained('$R/pack/planning/cost')
m = json.load(open('$PACK/planning/planning.json'))
m['context'] = 5
m['trained_on'] = {'encoder': 'perception:$PERC (grid 4, tokens)', 'dim': 192, 'splits': {'train': 5600},
                   'suite': '$R/data', 'critic': '$PACK/planning/cost'}
json.dump(m, open('$R/pack/planning/planning.json', 'w'), indent=1)"
for cat in near far; do
  for pl in cem hier random; do
    .venv/bin/cogarch eval --suite planning --model $R/pack --data $R/data --split test --category $cat --limit 100 \
      --planner $pl --output $R/test_${cat}_$pl
  done
done
