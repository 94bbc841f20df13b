#!/bin/bash
# Perceived object slots WITH static-element slots, trained on VoE scenes, then the object world
# model recipe of docs/bench_world_model.md §7 (change_weight 12) on them. Results: §8 there.
# The shipped pack's encoder stays frozen; each new object head is trained on physqa train clips +
# the extra VoE suite's train clips (seed 11; its scenes are not the scored suite's, seed 7), then
# encodes both suites; the world model trains on possible train clips only and is scored on the
# quadruplets of runs/voeq2000 by voe_scores (variant chosen on val).
#   bash evals/bench/voe_perceived_statics.sh [OUT_DIR]
# About 2 h on 2 idle cores (two jobs at a time at one thread each).
set -e
cd "$(dirname "$0")/../.."
R=${1:-runs/perc_voe}
. evals/bench/recipe_lib.sh
bench_suites
D=$VOE_EVAL
X=$VOE_X
P=$PHYSQA
PACK=cogarch/assets/default_pack/perception
PY=.venv/bin/python
CG=.venv/bin/cogarch
export OMP_NUM_THREADS=1
mkdir -p $R
objhead() {  # $1 name, then overrides
  local n=$1; shift
  [ -d $R/head_$n/final ] || $CG train objects --config configs/perception/objects_tiny.yaml encoder=$PACK \
    data.data_dir=$P "data.extra_dirs=[$X]" trainer.max_steps=2000 trainer.ckpt_every=500 \
    trainer.out_dir=$R/head_$n "$@" > $R/head_$n.log 2>&1
}
# two jobs at a time; `wait $pid` so that a failed background job stops the script (set -e)
objhead s6 head.statics=6 & p=$!; objhead s6step2 head.statics=6 head.step_layers=2; wait $p
# Held-out slot quality on the scored suite's val clips (objects, visibility at hidden steps, statics)
for h in pack s6 s6step2; do
  f=$R/head_$h/final; [ $h = pack ] && f=$PACK
  [ -s $R/objects_$h.json ] || $PY -m cogarch.evals.bench.objects --perception $f --data $D --split val \
    --out $R/objects_$h.json > /dev/null
done
feats() {  # $1 head name: world-model shards of both suites (rows of 6 object + 6 static slots)
  for d in $D $X; do
    s=eval; [ $d = $X ] && s=train
    [ -f $R/feat_$1/$s/voe.safetensors ] || $PY -c "import sys; from cogarch.features import write_world_model_features as w; \
w(sys.argv[1], sys.argv[2], sys.argv[3], kind='objects', progress=False)" $R/head_$1/final $d $R/feat_$1/$s
  done
}
feats s6 & p=$!; feats s6step2; wait $p
wm() {  # $1 name, $2 train shard folder, $3 width, $4 slots per step, $5 seed (default 0)
  [ -d $R/wm_$1/final ] || $CG train world_model --config configs/world_model/objects_tiny.yaml \
    data.features_dir=$2 trainer.out_dir=$R/wm_$1 trainer.seed=${5:-0} model.latent_dim=$3 model.max_patches=$4 \
    model.change_weight=12 trainer.max_steps=2000 > $R/wm_$1.log 2>&1
}
# Control: the same head's shards without the static rows (its 6 object slots, 18 columns)
for s in train eval; do
  [ -f $R/feat_s6_obj/$s/voe.safetensors ] || $PY -m cogarch.evals.bench.shard_slice --shard $R/feat_s6/$s/voe.safetensors \
    --out $R/feat_s6_obj/$s --slots 6 --width 18
done
wm s6 $R/feat_s6/train 27 12 & p=$!; wm s6step2 $R/feat_s6step2/train 27 12; wait $p
wm s6_obj $R/feat_s6_obj/train 18 6
wm s6step2_seed1 $R/feat_s6step2/train 27 12 1  # a second seed of the world model on s6step2's rows
for n in s6 s6step2 s6_obj s6step2_seed1; do
  f=$R/feat_${n%_seed1}/eval/voe.safetensors
  [ -s $R/voe_scores_$n.txt ] || $PY -m cogarch.evals.bench.voe_scores --world-model $R/wm_$n/final --data $D \
    --features $f --json $R/scores_$n.json > $R/voe_scores_$n.txt
done
# Diagnostic: the world model trained on TRUE tracks (voe_static.sh's D, 8 object + 6 static slots)
# reads the s6 head's perceived rows, padded to its layout (6 object slots + 2 empty + 6 static).
WD=runs/voe_static/wm_D/final
if [ -d $WD ]; then
  [ -f $R/feat_s6_pad14/eval/voe.safetensors ] || $PY -m cogarch.evals.bench.shard_slice \
    --shard $R/feat_s6/eval/voe.safetensors --out $R/feat_s6_pad14/eval --slots 12 --width 27 --insert 6:2
  [ -s $R/voe_scores_D_on_s6.txt ] || $PY -m cogarch.evals.bench.voe_scores --world-model $WD --data $D \
    --features $R/feat_s6_pad14/eval/voe.safetensors --json $R/scores_D_on_s6.json > $R/voe_scores_D_on_s6.txt
fi
for h in pack s6 s6step2; do  # the heads on physqa val clips (does the VoE training cost physqa?)
  f=$R/head_$h/final; [ $h = pack ] && f=$PACK
  [ -s $R/objects_physqa_$h.json ] || $PY -m cogarch.evals.bench.objects --perception $f --data $P \
    --split val --out $R/objects_physqa_$h.json > /dev/null
done
# The hero's rows (the object each violation acts on), perceived vs true, per type (test split);
# the shipped head's shard and the true rows come from evals/bench/voe_static.sh.
[ -f runs/voe_static/perceived/eval/voe.safetensors ] && [ -f runs/voe_static/eval27/voe.safetensors ] || {
  echo "run evals/bench/voe_static.sh first (its perceived and eval27 shards)" >&2; exit 2; }
for h in pack s6 s6step2; do
  f=$R/feat_$h/eval/voe.safetensors; [ $h = pack ] && f=runs/voe_static/perceived/eval/voe.safetensors
  [ -s $R/hero_$h.txt ] || $PY -m cogarch.evals.bench.voe_hero_rows --perceived $f \
    --true runs/voe_static/eval27/voe.safetensors --data $D --split test --object-slots 6 > $R/hero_$h.txt
done
tail -n 9 $R/voe_scores_*.txt
