#!/bin/bash
# Does the language module read the bus better when it trains on more clips? The shipped pack's
# two language stages and its blind baseline, retrained with the same recipe (configs/pack/default.yaml
# stage1/stage2 overrides, the shipped base LM, the shipped perception and world model frozen) on the
# train split of a second physqa suite: 5600 train clips (seed 11) instead of the pack's 1400. Both
# are scored on the pack's own val and test splits (runs/vf/physqa = the pack's data: seed 0, 2000
# clips), whose scenes the seed-11 suite does not share, beside the shipped model and blind LM read
# from the same feature shards. Results: docs/benchmarks.md, "What the object slots hold and what the
# language module reads". Measured 2026-12-07 at one thread each with 1-3 other jobs on the 2
# cores: encoding 5600 clips about 15 min, stage 1 26 min, stage 2 58 min, scoring a few minutes.
#   bash evals/bench/language_clips.sh [OUT_DIR]
set -e
cd "$(dirname "$0")/../.."
. evals/bench/recipe_lib.sh
R=${1:-runs/l7}
bench_suites physqa
P=$PHYSQA
X=$R/physqa8k
PACK=cogarch/assets/default_pack
PY=.venv/bin/python
CG=.venv/bin/cogarch
[ -f $PACK/pack.json ] || { echo "error: no shipped pack at $PACK" >&2; exit 2; }
mkdir -p $R
keep $X || $CG generate --suite physqa --n 8000 --seed 11 --out $X --workers 1 train_per_template=4
pack_features $PACK $P $R/features train,val,test
pack_features $PACK $X $R/features8k train
S1=$(ovr stage1_overrides)
S2=$(ovr stage2_overrides)
C="model.base_lm=$PACK/language/base data_dir=$X features_dir=$R/features8k trainer.seed=0 \
model.pool_per_kind.forecast=none trainer.progress=false"
# the blind LM reads no features: it runs beside the two stages
keep $R/blind8k/final || OMP_NUM_THREADS=1 $CG train language --config configs/language/tiny.yaml $C stage=2 blind=true \
  trainer.out_dir=$R/blind8k $S2 > $R/blind8k.log 2>&1 &
BLIND=$!
trap 'kill $BLIND 2>/dev/null || true' EXIT  # a failed stage must not leave the blind job running
keep $R/s1_8k/final || OMP_NUM_THREADS=1 $CG train language --config configs/language/tiny.yaml $C stage=1 \
  trainer.out_dir=$R/s1_8k $S1 > $R/s1_8k.log 2>&1
keep $R/s2_8k/final || OMP_NUM_THREADS=1 $CG train language --config configs/language/tiny.yaml $C stage=2 \
  init_from=$R/s1_8k/final trainer.out_dir=$R/s2_8k $S2 > $R/s2_8k.log 2>&1
wait $BLIND
for split in val test; do
  pids=""
  for m in shipped 8k; do
    if [ $m = shipped ]; then M=$PACK/language; B=$PACK/language_blind; else M=$R/s2_8k/final; B=$R/blind8k/final; fi
    keep $R/${m}_$split.json || { OMP_NUM_THREADS=1 $PY -m cogarch.evals.bench.lang_eval --data $P --features $R/features \
      --split $split --model $M --blind $B --swap --out $R/${m}_$split.json --samples $R/samples_${m}_$split > $R/${m}_$split.log 2>&1 &
      pids="$pids $!"; }
  done
  for p in $pids; do wait $p; done  # `wait PID` returns the job's status: a failed scoring stops the script
done
for split in val test; do  # exact McNemar: the model and the blind LM, 1400 against 5600 training clips
  for v in model blind_trained; do
    $PY -m cogarch.evals.bench.paired $R/samples_shipped_$split/$v.samples.jsonl $R/samples_8k_$split/$v.samples.jsonl \
      --names 1400 5600 > $R/.paired_${v}_$split.tmp && mv $R/.paired_${v}_$split.tmp $R/paired_${v}_$split.txt
  done
done
