# Shell helpers shared by the bench scripts that reuse the default pack's recipe. Source it after
# `cd` to the repository root:  . evals/bench/recipe_lib.sh
#   ovr KEY   prints the override list KEY of configs/pack/default.yaml on one line, so a bench
#             script follows the recipe when it changes (call it on its own line: under `set -e` the
#             script stops there if the recipe cannot be read)
#   keep PATH succeeds, with a note on stderr, when PATH exists: `keep X || make X` skips a
#             finished stage. A kept stage is NOT checked against the current recipe.
ovr() { .venv/bin/python -c "import yaml; print(' '.join(yaml.safe_load(open('configs/pack/default.yaml'))['$1']))"; }
keep() { [ -e "$1" ] && echo "keeping $1 (delete it to redo that stage)" >&2; }
#   variants_ok "VARIANTS" ALLOWED...  (after R is set) a one-line error and exit 2 when the output
#             folder R is a variant's name (a forgotten folder argument) or a variant is not ALLOWED
variants_ok() {
  local vs=$1 v; shift
  case " $* " in *" $R "*) echo "error: the first argument is the output folder (got the variant $R)" >&2; exit 2;; esac
  for v in $vs; do
    case " $* " in *" $v "*) ;; *) echo "error: unknown variant $v ($(printf '%s | ' "$@" | sed 's/ | $//'))" >&2; exit 2;; esac
  done
}
#   needs_runs V "VARIANTS" NAME[:FOLDER]...  when V is asked for, each NAME must be asked for before
#             it or already done ($R/FOLDER/final, FOLDER defaults to NAME); else a one-line error, exit 2
needs_runs() {
  local v=$1 vs=$2 seen=" " x spec; shift 2
  for x in $vs; do
    if [ "$x" = "$v" ]; then
      for spec in "$@"; do
        case "$seen" in *" ${spec%%:*} "*) ;; *) [ -d $R/${spec##*:}/final ] || {
          echo "error: $v needs $R/${spec##*:}/final: run the variant '${spec%%:*}' first" >&2; exit 2; };; esac
      done
      return 0
    fi
    seen="$seen$x "
  done
}
#   needs_big23 V "VARIANTS"  V (when asked for) scores the larger held-out split runs/l9/physqa23
#             (features runs/l9/features23, docs/benchmarks.md part 4): a one-line error when missing
needs_big23() {
  case " $2 " in *" $1 "*) [ -d runs/l9/physqa23/questions -a -f runs/l9/features23/test.json ] || {
    echo "error: $1 needs runs/l9/physqa23 and runs/l9/features23 (docs/benchmarks.md, part 4: a larger held-out test split)" >&2
    exit 2; };; esac
}
#   bench_suites [NAME ...]  sets the shared generated suites the VoE and language benches read and
#             makes the named ones (default: all) that are missing, each once, then reused by every script:
#               PHYSQA   (physqa)   runs/vf/physqa     physqa, seed 0, 2000 clips, 4 train questions per
#                                                      template: the default pack's own data (its val / test)
#               VOE_EVAL (voe_eval) runs/voeq2000      balanced VoE quadruplets, seed 7 (the scored suite)
#               VOE_X    (voe_x)    runs/voeq8000_s11  more quadruplets, seed 11 (train clips only are used)
bench_suites() {
  PHYSQA=runs/vf/physqa VOE_EVAL=runs/voeq2000 VOE_X=runs/voeq8000_s11
  local want=" ${*:-physqa voe_eval voe_x} " cg=.venv/bin/cogarch
  case $want in *" physqa "*) [ -d $PHYSQA ] || $cg generate --suite physqa --n 2000 --seed 0 --out $PHYSQA train_per_template=4;; esac
  case $want in *" voe_eval "*) [ -d $VOE_EVAL ] || $cg generate --suite voe --n 2000 --seed 7 --out $VOE_EVAL voe_design=quad;; esac
  case $want in *" voe_x "*) [ -d $VOE_X ] || $cg generate --suite voe --n 8000 --seed 11 --out $VOE_X voe_design=quad;; esac
}
#   pack_features PACK SUITE OUT SPLITS  language feature shards (cogarch/features.py) of SUITE's
#             SPLITS (comma-separated) read through PACK's perception and world model, unless OUT
#             already holds the last split's index
pack_features() {
  keep $3/${4##*,}.json || .venv/bin/python -c "
import sys
from cogarch.features import write_language_features as w
p = sys.argv[1]
w({'perception': p + '/perception', 'world_model': p + '/world_model'}, sys.argv[2], sys.argv[3],
  splits=tuple(sys.argv[4].split(',')), progress=False)" "$@"
}
#   lang_round NAME INIT OVERRIDE...  one stage-2 round of `cogarch train language` from INIT into
#             $R/NAME (kept when done; log $R/NAME_train.log). Reads the caller's R (output folder),
#             C (common overrides: base LM, data, features, seed) and S2 (the recipe's stage-2 overrides).
#   lang_score NAME [BLIND]  scores $R/NAME/final on the val and test splits of $PHYSQA with its
#             features runs/l7/features (lang_eval --samples, for paired.py); with BLIND the blind LM
#             $R/BLIND/final is scored beside it. Writes $R/NAME[_BLIND]_{val,test}.{json,log}.
#   event_round_vars  (after bench_suites physqa) sets S2 (the recipe's stage-2 overrides), C (a
#             round's common overrides: the shipped base LM, $PHYSQA with its features runs/l7/features,
#             seed 0) and W (six event templates shown twice: the default recipe's rounds 4 and 5).
event_round_vars() {
  S2=$(ovr stage2_overrides)
  C="model.base_lm=cogarch/assets/default_pack/language/base data_dir=$PHYSQA features_dir=runs/l7/features trainer.seed=0 \
model.pool_per_kind.forecast=none trainer.progress=false"
  W="template_repeat.desc_count=2 template_repeat.desc_first_hit=2 template_repeat.desc_collide=2 \
template_repeat.desc_moving_end=2 template_repeat.pred_collide=2 template_repeat.pred_next_hit=2"
}
lang_round() {
  local name=$1 init=$2; shift 2
  keep $R/$name/final || .venv/bin/cogarch train language --config configs/language/tiny.yaml $C stage=2 init_from=$init \
    trainer.out_dir=$R/$name $S2 "$@" > $R/${name}_train.log 2>&1
}
lang_score() {
  local extra="" tag=$1${2:+_$2}
  [ -n "$2" ] && extra="--blind $R/$2/final"
  for s in val test; do
    keep $R/${tag}_$s.json || .venv/bin/python -m cogarch.evals.bench.lang_eval --data $PHYSQA --features runs/l7/features \
      --split $s --model $R/$1/final $extra --out $R/${tag}_$s.json --samples $R/samples_${tag}_$s > $R/${tag}_$s.log 2>&1
  done
}
