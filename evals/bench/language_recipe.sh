#!/bin/bash
# A language-module recipe on runs/pack's data, scored on val from the feature shards: the two stages
# of configs/pack/default.yaml with the given step counts and extra overrides, then
# evals/bench/lang_eval.py (model and another clip's bus). Needs runs/pack (or $PACK) (data, language_pretrain,
# features/language) from `cogarch train pack --config configs/pack/default.yaml`.
#   bash evals/bench/language_recipe.sh OUT_DIR FEATURES S1_STEPS S2_STEPS [OVERRIDE ...]
# e.g. the pack's reader on the ground-truth object tokens of evals/bench/oracle_bus.py:
#   bash evals/bench/language_recipe.sh runs/oracle runs/oracle/features 1500 2000 model.pool=none
# S1_STEPS=0 reuses runs/pack/language_s1/final (stage 1 of the pack, on the pack's features; its saved
# config fixes model.*, so model.* overrides are refused then). Stages whose output exists in OUT_DIR
# are kept (use a new OUT_DIR for new arguments). Paths are relative to the repository root.
# A blind baseline trained as long:
#   cogarch train language --config configs/language/tiny.yaml stage=2 blind=true ... (see docs/bench_pack_history.md)
set -e
if [ $# -lt 4 ]; then
  echo "usage: bash evals/bench/language_recipe.sh OUT_DIR FEATURES S1_STEPS S2_STEPS [OVERRIDE ...]" >&2; exit 2
fi
cd "$(dirname "$0")/../.."
R=$1; F=$2; S1=$3; S2=$4; shift 4
P=${PACK:-runs/pack}  # the pipeline run whose data and base LM the recipe uses (PACK=runs/pack8 ...)
if [ "$S1" = 0 ]; then
  for o in "$@"; do
    case $o in model.*) echo "error: S1_STEPS=0 reuses the pack's stage 1, whose config fixes $o" >&2; exit 2;; esac
  done
  [ "$F" = "$P/features/language" ] || { echo "error: S1_STEPS=0 needs FEATURES=$P/features/language (the pack's stage 1 read those)" >&2; exit 2; }
fi
C="model.base_lm=$P/language_pretrain/final data_dir=$P/data/physqa features_dir=$F trainer.seed=0 \
model.pool=grid model.grid=4 model.max_tokens=64 model.lora_dropout=0.0 trainer.ckpt_every=0 trainer.progress=false $*"
S1_DIR=$P/language_s1/final
if [ "$S1" != 0 ]; then
  S1_DIR=$R/s1/final
  [ -d "$S1_DIR" ] || .venv/bin/cogarch train language --config configs/language/tiny.yaml $C stage=1 trainer.out_dir="$R/s1" trainer.max_steps="$S1"
fi
# init_from carries stage 1's model config (pool, LoRA rank, ...): model.* overrides act in stage 1.
[ -d "$R/s2/final" ] || .venv/bin/cogarch train language --config configs/language/tiny.yaml $C stage=2 init_from="$S1_DIR" trainer.out_dir="$R/s2" trainer.max_steps="$S2"
.venv/bin/python -m cogarch.evals.bench.lang_eval --data "$P/data/physqa" --features "$F" --split val \
  --model "$R/s2/final" --swap --out "$R/val.json"
