#!/bin/bash
# A fourth stage-2 round for the v12 language module, with and without relation channels.
# The slot rows carry contacts and motion that a fixed rule reads (desc_collide 66.0, "hits first"
# 67.4, "moving at the end" 66.5 on test) while the module stays at the priors, even when trained
# on those templates alone (docs/benchmarks.md, "What the object slots hold", part 4). Relation
# channels (modules/language/relations.py: each row's speed, who is within a few radii of it now,
# whom it touched first and whom it has come close to) hand the reader the pairwise distances and
# speeds. The first channel version (a 10-px kernel and raw speeds; commit cc4619b) was measured in
# runs/l10 (part 5), the current one (expansions; part 6) in runs/l11. Each variant continues v12's
# language module (runs/l9/rep2/final = cogarch/assets/default_pack/language) for 3000 stage-2
# steps of the pack's mix with six templates oversampled x2 (desc_count, desc_first_hit,
# desc_collide, desc_moving_end, pred_collide, pred_next_hit), 1 thread, seed 0:
#   rel    model.relations=[objects,forecast] (new zero-initialised relation projectors)
#   ctl    the same round without relations (the control: what the round gives by itself)
#   blind  v12's blind LM (runs/l9/blind_rep2/final) given the same round, scored beside ctl (once ctl is done)
#   hard   rel and ctl each continued for 1500 steps on four templates alone (desc_collide,
#          desc_moving_end, desc_first_hit, pred_collide): can a reader learn them when they are all
#          it sees, with relation channels and without? -> hard_rel, hard_ctl (needs rel and ctl)
#   move8k rel continued 2000 steps on desc_moving_end alone, from the 5600 train clips of the seed-11
#          suite (runs/l7/physqa8k, features runs/l7/features8k: 20,559 such questions, 4x the pack's);
#          a diagnostic of whether the module learns motion from more questions (the probe did:
#          docs/benchmarks.md, part 5), not a model: the other templates are not trained
#   big    rel (with its blind LM and without forecast) and ctl on the larger held-out split of
#          runs/l9/physqa23 (features runs/l9/features23, made as docs/benchmarks.md describes)
# Scored on the pack's val and test splits (evals/bench/lang_eval.py --samples, for paired.py).
#   bash evals/bench/language_round4.sh [OUT_DIR] [VARIANT ...]     (default: runs/l12, rel ctl blind)
# Needs runs/l7/features (evals/bench/language_variants.sh makes it), runs/l9/rep2/final and
# runs/l9/blind_rep2/final (v12's language module and blind LM: cogarch/assets/default_pack/language
# and language_blind). Results: docs/benchmarks.md, "What the object slots hold", parts 5 and 6.
set -e
cd "$(dirname "$0")/../.."
. evals/bench/recipe_lib.sh
R=${1:-runs/l12}; shift || true
VARIANTS=${*:-rel ctl blind}
variants_ok "$VARIANTS" rel ctl blind hard big move8k  # checked before any work
needs_runs hard "$VARIANTS" rel ctl
needs_runs big "$VARIANTS" rel ctl blind
needs_runs move8k "$VARIANTS" rel
needs_big23 big "$VARIANTS"
case " $VARIANTS " in *" move8k "*) [ -d runs/l7/physqa8k/questions -a -f runs/l7/features8k/train.json ] || {
  echo "error: move8k needs runs/l7/physqa8k and runs/l7/features8k (evals/bench/language_clips.sh makes them)" >&2; exit 2; };; esac
FROM=runs/l9/rep2/final
BLIND=runs/l9/blind_rep2/final
[ -f $FROM/language_config.json ] || { echo "error: no v12 language module at $FROM" >&2; exit 2; }
[ -f $BLIND/language_config.json ] || { echo "error: no v12 blind LM at $BLIND" >&2; exit 2; }
[ -d runs/l7/features ] || { echo "error: no runs/l7/features (run evals/bench/language_variants.sh runs/l7 norm)" >&2; exit 2; }
bench_suites physqa
event_round_vars
REL="model.relations=[objects,forecast]"
HARD="templates=[desc_collide,desc_moving_end,desc_first_hit,pred_collide]"
export OMP_NUM_THREADS=1
mkdir -p $R
for v in $VARIANTS; do
  case $v in
    rel) lang_round rel $FROM $W trainer.max_steps=3000 "$REL"; lang_score rel;;
    ctl) lang_round ctl $FROM $W trainer.max_steps=3000; lang_score ctl;;
    hard) for m in rel ctl; do
            lang_round hard_$m $R/$m/final "$HARD" trainer.max_steps=1500 trainer.ckpt_every=500; lang_score hard_$m
          done;;
    move8k) C="${C/data_dir=$PHYSQA features_dir=runs\/l7\/features/data_dir=runs/l7/physqa8k features_dir=runs/l7/features8k}" \
              lang_round move8k $R/rel/final "templates=[desc_moving_end]" trainer.max_steps=2000 trainer.ckpt_every=1000
            lang_score move8k;;
    big) keep $R/big_rel_test.json || .venv/bin/python -m cogarch.evals.bench.lang_eval --data runs/l9/physqa23 --features runs/l9/features23 \
           --split test --model $R/rel/final --blind $R/blind/final --drop forecast --out $R/big_rel_test.json \
           --samples $R/samples_big_rel_test > $R/big_rel_test.log 2>&1
         keep $R/big_ctl_test.json || .venv/bin/python -m cogarch.evals.bench.lang_eval --data runs/l9/physqa23 --features runs/l9/features23 \
           --split test --model $R/ctl/final --out $R/big_ctl_test.json --samples $R/samples_big_ctl_test > $R/big_ctl_test.log 2>&1;;
    blind) lang_round blind $BLIND blind=true $W trainer.max_steps=3000
           if [ -d $R/ctl/final ]; then lang_score ctl blind; else echo "note: $R/ctl/final not there yet: rerun the blind variant to score it" >&2; fi;;
  esac
done
