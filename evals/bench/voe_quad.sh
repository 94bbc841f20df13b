#!/bin/bash
# VoE on IntPhys-balanced quadruplets (evals/world/voe_quad.py): every predictor and control on the
# same 500 quadruplets (seed 7; 50 per eval split). Results: docs/benchmarks.md, "Balanced VoE
# quadruplets". The V-JEPA runs are those of docs/bench_world_model.md §6 (runs/vf/*, made here
# when missing: about 7 min each on 2 idle cores). Steps whose output exists are kept.
#   bash evals/bench/voe_quad.sh [OUT_DIR]
set -e
cd "$(dirname "$0")/../.."
R=${1:-runs/vq}
D=runs/voeq2000
mkdir -p $R
[ -d $D ] || .venv/bin/cogarch generate --suite voe --n 2000 --seed 7 --out $D voe_design=quad
# The shipped pack (object world model) with chance, prior and the motion control beside it.
for sp in val test test_ood; do
  [ -f $R/pack_$sp/results.json ] || .venv/bin/cogarch eval --suite voe --model cogarch/assets/default_pack \
    --data $D --split $sp --out $R/pack_$sp > $R/pack_$sp.txt 2>&1
done
# The pack's object world model against an untrained one of the same config and copy-last,
# four clip scores chosen on val.
[ -s $R/voe_scores.txt ] || .venv/bin/python -m cogarch.evals.bench.voe_scores \
  --perception cogarch/assets/default_pack/perception --world-model cogarch/assets/default_pack/world_model \
  --data $D > $R/voe_scores.txt 2>&1
# V-JEPA perceptions on the pack's physqa data: the pack's masks (base) and with a future mask set.
V=runs/vf
[ -d $V/physqa ] || .venv/bin/cogarch generate --suite physqa --n 2000 --seed 0 --out $V/physqa train_per_template=4
for name in base future; do
  cfg=configs/perception/tiny.yaml; [ $name = future ] && cfg=configs/perception/tiny_future.yaml
  [ -d $V/$name/final ] || .venv/bin/cogarch train perception --config $cfg data.data_dir=$V/physqa \
    trainer.out_dir=$V/$name trainer.seed=0 trainer.max_steps=600 model.pool_grid=4 trainer.ckpt_every=100 > $V/$name.train.log 2>&1
done
# The V-JEPA predictors themselves (surprise = next-step token error), trained and untrained.
[ -s $R/future.native.txt ] || .venv/bin/python -m cogarch.evals.bench.vjepa_surprise \
  --perception $V/future/final --data $D > $R/future.native.txt 2>&1
[ -s $R/base.native.txt ] || .venv/bin/python -m cogarch.evals.bench.vjepa_surprise \
  --perception $V/base/final --data $D --skip-untrained > $R/base.native.txt 2>&1
# A future-mask V-JEPA that also trains on the suite's POSSIBLE train clips (shelves, wide occluders).
[ -d $R/mixq/final ] || .venv/bin/cogarch train perception --config configs/perception/tiny_future.yaml \
  data.data_dir=$V/physqa 'data.extra_dirs=['$D']' data.windows=true trainer.out_dir=$R/mixq \
  trainer.seed=0 trainer.max_steps=600 model.pool_grid=4 trainer.ckpt_every=100 > $R/mixq.train.log 2>&1
[ -s $R/mixq.native.txt ] || .venv/bin/python -m cogarch.evals.bench.vjepa_surprise \
  --perception $R/mixq/final --data $D --skip-untrained > $R/mixq.native.txt 2>&1
tail -n 25 $R/voe_scores.txt $R/*.native.txt
