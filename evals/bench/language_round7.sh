#!/bin/bash
# A seventh stage-2 round for the v15 language module: more clips, or the same ones again.
# v15 and its blind LM have had their six rounds on the pack's own train split (1600 clips, 46887
# questions of runs/vf/physqa). The gap over the blind LM is +21.4 on val and +19.7 on test
# (docs/benchmarks.md, "What the object slots hold", parts 8-9). Every variant continues the shipped
# folders for 3000 steps of round 6's mix (round 4-6's six templates x2), 1 thread, seed 0, the
# binder frozen (v15's own: binder_init = $R/../l14/binder_first.safetensors, the weights v15 holds):
#   more        v15 on the train split of another physqa suite: runs/l9/physqa23 (seed 23, 7000 train
#               clips, 235083 questions; its test split is the extra held-out split of part 4). Its
#               language features runs/l9/features23/train come from the shipped pack (pack_features).
#   more_blind  v15's blind LM (language_blind) given the same round, scored beside more
#   same        the control: v15 given a seventh round on its own train split (what a round gives by itself)
#   same_blind  v15's blind LM given that round, scored beside same
# Scored on the pack's val and test splits (lang_eval --samples, for paired.py); chosen on val.
#   bash evals/bench/language_round7.sh [OUT_DIR] [VARIANT ...]     (default: runs/l16, more more_blind)
set -e
cd "$(dirname "$0")/../.."
. evals/bench/recipe_lib.sh
R=${1:-runs/l16}; shift || true
VARIANTS=${*:-more more_blind}
variants_ok "$VARIANTS" more more_blind same same_blind
FROM=${FROM:-cogarch/assets/default_pack/language}
BLIND=${BLIND:-cogarch/assets/default_pack/language_blind}
BINDER=${BINDER:-runs/l14/binder_first.safetensors}
P23=runs/l9/physqa23 F23=runs/l9/features23
bench_suites physqa
event_round_vars
[ -d runs/l7/features ] || { echo "error: no runs/l7/features (run evals/bench/language_variants.sh runs/l7 norm)" >&2; exit 2; }
[ -f $BINDER ] || { echo "error: no $BINDER (bash evals/bench/language_round6.sh runs/l14 first)" >&2; exit 2; }
case " $VARIANTS " in *" more"*)
  [ -d $P23 ] || .venv/bin/cogarch generate --suite physqa --n 10000 --seed 23 --out $P23 train_per_template=4
  pack_features cogarch/assets/default_pack $P23 $F23 train;;
esac
export OMP_NUM_THREADS=1
mkdir -p $R
FROZEN="binder_init=$BINDER freeze_binder=true model.binder_first=true"
for v in $VARIANTS; do
  case $v in
    more) lang_round more $FROM $W trainer.max_steps=3000 $FROZEN data_dir=$P23 features_dir=$F23; lang_score more;;
    more_blind) lang_round more_blind $BLIND blind=true $W trainer.max_steps=3000 data_dir=$P23 features_dir=$F23
                if [ -d $R/more/final ]; then lang_score more more_blind; else echo "note: $R/more/final not there yet: rerun more_blind to score it" >&2; fi;;
    same) lang_round same $FROM $W trainer.max_steps=3000 $FROZEN; lang_score same;;
    same_blind) lang_round same_blind $BLIND blind=true $W trainer.max_steps=3000
                if [ -d $R/same/final ]; then lang_score same same_blind; else echo "note: $R/same/final not there yet: rerun same_blind to score it" >&2; fi;;
  esac
done
