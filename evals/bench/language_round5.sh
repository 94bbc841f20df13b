#!/bin/bash
# A fifth stage-2 round for the v13 language module, with and without the slot binder.
# v13 reads collide / "moving at the end" at the priors (53.0 / 53.0 on test) although the rows
# hold the answers: given the named pair bound by code a probe reads collide at 79.5 %, and no
# learned reader tried found the pair (docs/benchmarks.md, "What the object slots hold", part 6).
# The slot binder (modules/language/binder.py) gives binding a shape: role queries over the question
# are mapped into the slots' identity space and pick slots by a dot product; fixed role and pair
# read-outs of the picked slots become 12 extra prefix tokens (3 roles + 3 pairs, for objects and
# forecast). Each variant continues v13's language module (cogarch/assets/default_pack/language)
# for 3000 stage-2 steps of the pack's mix with the same six templates oversampled x2 as round 4,
# 1 thread, seed 0:
#   bind   model.binder=[objects,forecast] (new binder, zero-initialised projectors)
#   bind2  the same, with the binder pretrained first and frozen (evals/bench/binder_pretrain.py:
#          1500 steps on desc_collide's answers, the prompt read through the binder's own token
#          table (model.binder_text=own), into $R/binder_own_collide.safetensors), as BLIP-2
#          pretrains its Q-Former before connecting it to the LM. (Pretrained on five event
#          templates at once it found the named pair for about a third of the questions, through
#          the LM's embeddings or its own table; on three, for under a tenth: docs, part 7.)
#   ctl    the same round without the binder (the control: what a fifth round gives by itself)
#   blind  v13's blind LM (cogarch/assets/default_pack/language_blind) given the same round, scored
#          beside bind (once bind is done)
#   big    bind2 (and without forecast) and ctl (with the blind LM) on the larger held-out split of
#          runs/l9/physqa23 (features runs/l9/features23, made as docs/benchmarks.md part 4 describes)
# Scored on the pack's val and test splits (evals/bench/lang_eval.py --samples, for paired.py).
#   bash evals/bench/language_round5.sh [OUT_DIR] [VARIANT ...]     (default: runs/l13, bind ctl blind)
# (run here: bind ctl, then blind, then bind2, then big; the controls of the shipped module:
#  lang_eval --split test --model runs/l13/bind2/final --swap --drop forecast)
# Needs runs/l7/features (evals/bench/language_variants.sh makes it). Results: docs/benchmarks.md,
# "What the object slots hold", part 7.
set -e
cd "$(dirname "$0")/../.."
. evals/bench/recipe_lib.sh
R=${1:-runs/l13}; shift || true
VARIANTS=${*:-bind ctl blind}
variants_ok "$VARIANTS" bind bind2 ctl blind big
needs_runs big "$VARIANTS" bind2 ctl blind
needs_big23 big "$VARIANTS"
FROM=cogarch/assets/default_pack/language
BLIND=cogarch/assets/default_pack/language_blind
[ -d runs/l7/features ] || { echo "error: no runs/l7/features (run evals/bench/language_variants.sh runs/l7 norm)" >&2; exit 2; }
bench_suites physqa
event_round_vars
export OMP_NUM_THREADS=1
mkdir -p $R
for v in $VARIANTS; do
  case $v in
    bind) lang_round bind $FROM $W trainer.max_steps=3000 "model.binder=[objects,forecast]"; lang_score bind;;
    bind2) keep $R/binder_own_collide.safetensors || .venv/bin/python -m cogarch.evals.bench.binder_pretrain --language $FROM \
             --data $PHYSQA --features runs/l7/features --binder-text own --templates desc_collide --steps 1500 --every 500 \
             --out $R/binder_own_collide.safetensors > $R/binder_pretrain_own_collide.log 2>&1
           lang_round bind2 $FROM $W trainer.max_steps=3000 "model.binder=[objects,forecast]" model.binder_text=own \
             binder_init=$R/binder_own_collide.safetensors freeze_binder=true
           lang_score bind2;;
    ctl) lang_round ctl $FROM $W trainer.max_steps=3000; lang_score ctl;;
    blind) lang_round blind $BLIND blind=true $W trainer.max_steps=3000
           if [ -d $R/bind/final ]; then lang_score bind blind; else echo "note: $R/bind/final not there yet: rerun the blind variant to score it" >&2; fi;;
    big) keep $R/big_bind2_test.json || .venv/bin/python -m cogarch.evals.bench.lang_eval --data runs/l9/physqa23 --features runs/l9/features23 \
           --split test --model $R/bind2/final --drop forecast --out $R/big_bind2_test.json \
           --samples $R/samples_big_bind2_test > $R/big_bind2_test.log 2>&1
         keep $R/big_ctl_test.json || .venv/bin/python -m cogarch.evals.bench.lang_eval --data runs/l9/physqa23 --features runs/l9/features23 \
           --split test --model $R/ctl/final --blind $R/blind/final --out $R/big_ctl_test.json --samples $R/samples_big_ctl_test \
           > $R/big_ctl_test.log 2>&1;;
  esac
done
