#!/bin/bash
# How the language module reads the object rows. Perception publishes gated object rows
# (p(exist) x p(visible) times [identity | 1 | position | velocity]), one per slot per step. This
# retrains the shipped pack's two language stages (configs/pack/default.yaml stage1/stage2
# overrides, the shipped base LM, the pack's 1400 train clips, the shipped perception and world model
# frozen) once per variant:
#   norm    the recipe as shipped (a retrained control: the shipped stages ran at 2 threads in the pack
#           pipeline, a retrain here is not bit-identical)
#   nonorm  the same with model.input_norm_per_kind.{objects,forecast}=false: the projectors' input
#           LayerNorm is scale-invariant, so a row at gate 0.05 reaches the LM like a confident one
#   slot    objects and forecast pooled to one token per slot (model.pool_per_kind.*=slot, each
#           slot's 8 steps concatenated) with the slot-index embedding (model.index_embed=16), so
#           slot k's observed and forecast tokens carry the same index
#   slotnn  slot with the norm off for objects and forecast (an absent slot stays a zero token)
#   answer  norm with the bus after the question (model.prefix_at=answer), so each bus token is
#           computed knowing what is asked ("is this slot a cube?") and the answer counts matches
#   slotans slotnn with model.prefix_at=answer
# and scores each on the pack's val and test splits (evals/bench/lang_eval.py, --samples for paired.py).
# Results: docs/benchmarks.md, "What the object slots hold and what the
# language module reads".
# Measured 2026-12-07 at one thread with 2-3 other jobs on the 2 cores: stage 1 ~28 min, stage 2
# ~56 min, scoring a few minutes per variant (slot variants, 84 prefix tokens instead of 168:
# stage 1 ~10 min, stage 2 ~30 min; answer: stage 1 ~20 min, stage 2 ~0.8 s a step).
#   bash evals/bench/language_variants.sh [OUT_DIR] [VARIANT ...]     (default: nonorm norm)
set -e
cd "$(dirname "$0")/../.."
. evals/bench/recipe_lib.sh
R=${1:-runs/l7}; shift || true
VARIANTS=${*:-nonorm norm}
for v in $VARIANTS; do  # checked before any work, not when the loop reaches it
  case $v in norm|nonorm|slot|slotnn|answer|slotans) ;; *) echo "error: unknown variant $v (norm | nonorm | slot | slotnn | answer | slotans)" >&2; exit 2;; esac
done
bench_suites physqa
P=$PHYSQA
PACK=cogarch/assets/default_pack
PY=.venv/bin/python
CG=.venv/bin/cogarch
[ -f $PACK/pack.json ] || { echo "error: no shipped pack at $PACK" >&2; exit 2; }
mkdir -p $R
pack_features $PACK $P $R/features train,val,test
S1=$(ovr stage1_overrides)
S2=$(ovr stage2_overrides)
C="model.base_lm=$PACK/language/base data_dir=$P features_dir=$R/features trainer.seed=0 \
model.pool_per_kind.forecast=none trainer.progress=false"
export OMP_NUM_THREADS=1
for v in $VARIANTS; do
  case $v in
    norm) X="";;
    nonorm) X="model.input_norm_per_kind.objects=false model.input_norm_per_kind.forecast=false";;
    slot) X="model.pool_per_kind.objects=slot model.pool_per_kind.forecast=slot model.index_embed=16";;
    slotnn) X="model.pool_per_kind.objects=slot model.pool_per_kind.forecast=slot model.index_embed=16 \
model.input_norm_per_kind.objects=false model.input_norm_per_kind.forecast=false";;
    answer) X="model.prefix_at=answer";;
    slotans) X="model.pool_per_kind.objects=slot model.pool_per_kind.forecast=slot model.index_embed=16 \
model.input_norm_per_kind.objects=false model.input_norm_per_kind.forecast=false model.prefix_at=answer";;
  esac
  keep $R/s1_$v/final || $CG train language --config configs/language/tiny.yaml $C stage=1 trainer.out_dir=$R/s1_$v $S1 $X \
    > $R/s1_$v.log 2>&1
  keep $R/s2_$v/final || $CG train language --config configs/language/tiny.yaml $C stage=2 init_from=$R/s1_$v/final \
    trainer.out_dir=$R/s2_$v $S2 > $R/s2_$v.log 2>&1
  for split in val test; do
    keep $R/${v}_$split.json || $PY -m cogarch.evals.bench.lang_eval --data $P --features $R/features --split $split \
      --model $R/s2_$v/final --swap --out $R/${v}_$split.json --samples $R/samples_${v}_$split > $R/${v}_$split.log 2>&1
  done
done
