#!/bin/bash
# Baseline: the planning stages of configs/pack/untrained_encoder.yaml alone, on runs/pack (data from
# `cogarch train pack --config configs/pack/default.yaml`): an untrained encoder (1 step at lr 1e-12),
# then the same planning features, world model, critic and evaluation as the pipeline.
#   bash evals/bench/untrained_planning.sh [OUT_DIR]
# Stages whose output exists in OUT_DIR are kept (delete a stage's folder to redo it): after a change
# to the world-model recipe only, delete OUT_DIR/planning_world_model and the critic is not retrained.
# A kept stage is NOT checked against the current recipe: after a recipe change, delete its folder.
set -e
cd "$(dirname "$0")/../.."
R=${1:-runs/untrained_plan}
export OMP_NUM_THREADS=2
# The world model's and critic's overrides come from the default pack's recipe, so the baseline
# follows it when the recipe changes.
. evals/bench/recipe_lib.sh  # ovr, keep
WM_OVR=$(ovr planning_world_model_overrides)
CRITIC_OVR=$(ovr critic_overrides)
keep $R/perception/final || .venv/bin/cogarch train perception --config configs/perception/tiny.yaml data.data_dir=runs/pack/data/physqa trainer.out_dir=$R/perception trainer.seed=0 trainer.max_steps=1 optim.lr=1.0e-12 optim.warmup_steps=0 model.pool_grid=4 trainer.ckpt_every=0 trainer.progress=false
keep $R/features/planning_features.json || .venv/bin/python -c "
from cogarch.modules.cost.cli import PerceptionEncoder, write_planning_features
write_planning_features('runs/pack/data/planning', PerceptionEncoder('$R/perception/final', 4, tokens=True), '$R/features', progress=False)"
keep $R/planning_world_model/final || .venv/bin/cogarch train world_model --config configs/world_model/tiny.yaml data.features_dir=$R/features/world_model model.latent_dim=192 model.action_dim=2 trainer.out_dir=$R/planning_world_model trainer.seed=0 $WM_OVR trainer.progress=false
keep $R/critic/final || .venv/bin/cogarch train critic --config configs/critic/tiny.yaml data.features_dir=$R/features/critic model.latent_dim=192 trainer.out_dir=$R/critic trainer.seed=0 $CRITIC_OVR trainer.progress=false
rm -rf $R/pack && mkdir -p $R/pack/planning
.venv/bin/python -c "
from cogarch.registry import module_class
module_class('perception').from_pretrained('$R/perception/final').save_pretrained('$R/pack/perception', inference_only=True)"
cp -r $R/planning_world_model/final $R/pack/planning/world_model && cp -r $R/critic/final $R/pack/planning/cost
.venv/bin/python -c "
import json; m = json.load(open('runs/pack/pack/planning/planning.json')); m.pop('trained_on', None)
json.dump(m, open('$R/pack/planning/planning.json', 'w'), indent=1)"
.venv/bin/cogarch eval --suite planning --model $R/pack --data runs/pack/data/planning --limit 20 --output $R/eval
.venv/bin/python -m cogarch.evals.bench.planning_critic critic --pack $R/pack --data runs/pack/data/planning
