#!/bin/bash
# What an object world model needs to detect balanced VoE violations: static scene elements, more
# possible clips of the VoE scenes, and a loss weighted to where the scene changes. Ceiling
# diagnostic on the simulator's TRUE tracks (evals/bench/voe_oracle.py), then the same recipe on
# the shipped pack's PERCEIVED object slots. Results: docs/bench_world_model.md §7.
# Every run trains on possible train clips only (world_model/train.py drops impossible and
# non-train clips); all scores are on the quadruplets of runs/voeq2000 (seed 7), whose scenes the
# extra training suite (seed 11) does not share. About 2.5 h on 2 idle cores (runs of 2000 steps
# take 12-22 min at one thread each; encoding 8000 clips with the pack's perception ~15 min).
#   bash evals/bench/voe_static.sh [OUT_DIR]
set -e
cd "$(dirname "$0")/../.."
R=${1:-runs/voe_static}
. evals/bench/recipe_lib.sh
bench_suites
D=$VOE_EVAL
X=$VOE_X
P=$PHYSQA
PY=.venv/bin/python
CG=.venv/bin/cogarch
mkdir -p $R
oracle() {  # oracle shards: $1 folder, $2 static slots, then the suites
  local out=$1 st=$2; shift 2
  for d in "$@"; do  # voe_oracle writes OUT/<the suite's name>.safetensors
    s=$($PY -c "import json, sys; print(json.load(open(sys.argv[1] + '/manifest.json'))['suite'])" $d)
    [ -f $out/$s.safetensors ] || $PY -m cogarch.evals.bench.voe_oracle --data $d --out $out --statics $st
  done
}
oracle $R/eval18 0 $D          # the quadruplets to score, object rows only (18-D)
oracle $R/eval27 6 $D          # ... with 6 static-element slots (27-D)
oracle $R/small27 6 $P $D      # training: physqa + the eval suite's own possible train clips
oracle $R/big27 6 $P $X        # training: physqa + 2800 possible train clips of another suite
oracle $R/big18 0 $P $X
train() {  # $1 name, $2 features, $3 width, $4 slots, $5 change_weight, $6 steps, $7 seed
  [ -d $R/wm_$1/final ] || OMP_NUM_THREADS=1 $CG train world_model --config configs/world_model/objects_tiny.yaml \
    data.features_dir=$2 trainer.out_dir=$R/wm_$1 trainer.seed=$7 model.latent_dim=$3 model.max_patches=$4 \
    model.change_weight=$5 trainer.max_steps=$6 > $R/wm_$1.log 2>&1
}
score() {  # $1 name, $2 eval shard
  [ -s $R/voe_scores_$1.txt ] || $PY -m cogarch.evals.bench.voe_scores --world-model $R/wm_$1/final --data $D \
    --features $2 --json $R/scores_$1.json > $R/voe_scores_$1.txt
}
train small 27 $R/small27 27 14 0 1500 0 && score small $R/eval27/voe.safetensors
train A $R/big27 27 14 0 2000 0 & train B $R/big27 27 14 4 2000 0; wait
train C $R/big18 18 8 4 2000 0 & train D $R/big27 27 14 12 2000 0; wait
train D1 $R/big27 27 14 12 2000 1
train E $R/big27 27 14 12 4000 0   # D trained twice as long
for n in A B D D1 E; do score $n $R/eval27/voe.safetensors; done
score C $R/eval18/voe.safetensors
# test_ood clips are 1.5x longer: the same model read at its training time scale (12 steps of 4 frames)
for n in D D1; do
  [ -s $R/ood12_$n.txt ] || $PY -m cogarch.evals.bench.voe_oracle_ood --world-model $R/wm_$n/final --data $D --statics 6 > $R/ood12_$n.txt
done
# The pack's perceived object slots (18-D rows, no static elements) on the extra suite's possible clips.
Q=$R/perceived
mkdir -p $Q
for d in $D $X; do
  s=eval; [ $d = $X ] && s=train
  [ -f $Q/$s/voe.safetensors ] || $PY -c "import sys; from cogarch.features import write_world_model_features as w; \
w('cogarch/assets/default_pack/perception', sys.argv[1], sys.argv[2], kind='objects')" $d $Q/$s
done
train Pcw0 $Q/train 18 8 0 2000 0 & train Pcw12 $Q/train 18 8 12 2000 0; wait
for n in Pcw0 Pcw12; do score $n $Q/eval/voe.safetensors; done
tail -n 9 $R/voe_scores_*.txt $R/ood12_*.txt
