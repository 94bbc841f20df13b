#!/bin/bash
# A sixth stage-2 round for the v14 language module: the slot binder taught "hits first" / "hits next".
# v14's binder was pretrained on desc_collide only: on "Which object does the X hit first?" its role 0
# takes the subject X for 36 % of val questions, and v14 answers "hits first" near the prior (38.1 on
# test, prior 35.1). Read from the same rows with the subject bound by code, the first slot it touches
# is the answer for 61 % (docs/benchmarks.md, "What the object slots hold", part 8). Pretraining on
# several templates at once lost the binding (part 7); here the collide binder is continued (a
# curriculum, evals/bench/binder_pretrain.py --init) on collide, hits first and hits next, reading
# forecast and objects rows as the module does (--kinds). Each variant continues v14's language
# module (cogarch/assets/default_pack/language) for 3000 stage-2 steps of the pack's mix with round
# 4 and 5's six templates oversampled x2, 1 thread, seed 0, its binder frozen:
#   cur    the curriculum binder ($R/binder_cur.safetensors) in place of v14's
#   first  cur's binder pretrained again from the collide binder with the binder's first token
#          (model.binder_first: the slot role 0 touched first, as a role token; binder_pretrain
#          --first, into $R/binder_first.safetensors), the module given that token
#   ctl    v14's own binder (the control: what a sixth round gives by itself)
#   blind  v14's blind LM (cogarch/assets/default_pack/language_blind) given the same round, scored
#          beside cur (once cur is done)
#   big    first (and without forecast) and ctl (with the blind LM) on the larger held-out split of
#          runs/l9/physqa23 (features runs/l9/features23, docs/benchmarks.md part 4)
#   gt     as first, with both binder pretrainings (collide, then the curriculum with --first) run by
#          the generic trainer (`cogarch train language-binder`, through binder_pretrain.py), as the
#          pack recipe now runs them: $R/binder_gt_collide.safetensors, then $R/binder_gt.safetensors
#   name   first's binder and token, the mix also weighting the questions answered by naming an
#          object: hits first and hits next x4, which is moving / which leaves / which caused x2
#          (the first token reads the "hits first" answer's slot for half the questions, yet v15 is
#          at 38.1; twenty-fifth session). name_blind: v14's blind LM given the same round, scored
#          beside name. Chosen against first on val before test is read.
# Scored on the pack's val and test splits (evals/bench/lang_eval.py --samples, for paired.py).
#   bash evals/bench/language_round6.sh [OUT_DIR] [VARIANT ...]     (default: runs/l14, cur ctl blind)
# FROM / BLIND default to the shipped pack's folders, which were v14's when this ran; the pack now
# ships v15 (this script's `first`), so to rerun it take v14 from git first, e.g.
#   git archive dbe41de cogarch/assets/default_pack | tar -x -C /tmp/v14
#   FROM=/tmp/v14/cogarch/assets/default_pack/language BLIND=/tmp/v14/cogarch/assets/default_pack/language_blind bash ...
# Needs runs/l7/features (evals/bench/language_variants.sh makes it) and v13's collide binder
# (language_round5.sh bind2 writes runs/l13/binder_own_collide.safetensors).
set -e
cd "$(dirname "$0")/../.."
. evals/bench/recipe_lib.sh
R=${1:-runs/l14}; shift || true
VARIANTS=${*:-cur ctl blind}
variants_ok "$VARIANTS" cur first ctl blind big gt name name_blind
needs_runs big "$VARIANTS" first ctl blind
needs_big23 big "$VARIANTS"
FROM=${FROM:-cogarch/assets/default_pack/language}
BLIND=${BLIND:-cogarch/assets/default_pack/language_blind}
COLLIDE=runs/l13/binder_own_collide.safetensors
[ -d runs/l7/features ] || { echo "error: no runs/l7/features (run evals/bench/language_variants.sh runs/l7 norm)" >&2; exit 2; }
bench_suites physqa
event_round_vars
NAMING="template_repeat.desc_first_hit=4 template_repeat.pred_next_hit=4 template_repeat.desc_which_moving=2 \
template_repeat.desc_which_exits=2 template_repeat.expl_which=2"  # after $W: these override its x2
export OMP_NUM_THREADS=1
mkdir -p $R
for v in $VARIANTS; do
  case $v in
    cur|first)
         extra=""; [ $v = first ] && extra=--first
         if ! keep $R/binder_$v.safetensors; then
           [ -f $COLLIDE ] || { echo "error: no $COLLIDE (bash evals/bench/language_round5.sh runs/l13 bind2)" >&2; exit 2; }
           .venv/bin/python -m cogarch.evals.bench.binder_pretrain --language $FROM --data $PHYSQA --features runs/l7/features \
             --binder-text own --kinds forecast,objects --templates desc_collide,desc_first_hit,pred_next_hit --init $COLLIDE \
             --steps 1500 --every 500 --lr 3e-4 $extra --out $R/binder_$v.safetensors > $R/binder_$v.log 2>&1
         fi
         lang_round $v $FROM $W trainer.max_steps=3000 binder_init=$R/binder_$v.safetensors freeze_binder=true \
           model.binder_first=$([ $v = first ] && echo true || echo false)
         lang_score $v;;
    gt) keep $R/binder_gt_collide.safetensors || .venv/bin/python -m cogarch.evals.bench.binder_pretrain --language $FROM \
          --data $PHYSQA --features runs/l7/features --binder-text own --templates desc_collide --steps 1500 --every 500 \
          --out $R/binder_gt_collide.safetensors > $R/binder_gt_collide.log 2>&1
        keep $R/binder_gt.safetensors || .venv/bin/python -m cogarch.evals.bench.binder_pretrain --language $FROM --data $PHYSQA \
          --features runs/l7/features --binder-text own --kinds forecast,objects --templates desc_collide,desc_first_hit,pred_next_hit \
          --init $R/binder_gt_collide.safetensors --steps 1500 --every 500 --lr 3e-4 --first --out $R/binder_gt.safetensors \
          > $R/binder_gt.log 2>&1
        lang_round gt $FROM $W trainer.max_steps=3000 binder_init=$R/binder_gt.safetensors freeze_binder=true model.binder_first=true
        lang_score gt;;
    name) [ -f $R/binder_first.safetensors ] || { echo "error: name needs $R/binder_first.safetensors (variant first)" >&2; exit 2; }
          lang_round name $FROM $W $NAMING trainer.max_steps=3000 binder_init=$R/binder_first.safetensors freeze_binder=true \
            model.binder_first=true
          lang_score name;;
    name_blind) lang_round name_blind $BLIND blind=true $W $NAMING trainer.max_steps=3000
           if [ -d $R/name/final ]; then lang_score name name_blind; else echo "note: $R/name/final not there yet: rerun name_blind to score it" >&2; fi;;
    ctl) lang_round ctl $FROM $W trainer.max_steps=3000 freeze_binder=true; lang_score ctl;;
    blind) lang_round blind $BLIND blind=true $W trainer.max_steps=3000
           if [ -d $R/cur/final ]; then lang_score cur blind; else echo "note: $R/cur/final not there yet: rerun the blind variant to score it" >&2; fi;;
    big) keep $R/big_first_test.json || .venv/bin/python -m cogarch.evals.bench.lang_eval --data runs/l9/physqa23 --features runs/l9/features23 \
           --split test --model $R/first/final --drop forecast --out $R/big_first_test.json \
           --samples $R/samples_big_first_test > $R/big_first_test.log 2>&1
         keep $R/big_ctl_test.json || .venv/bin/python -m cogarch.evals.bench.lang_eval --data runs/l9/physqa23 --features runs/l9/features23 \
           --split test --model $R/ctl/final --blind $R/blind/final --out $R/big_ctl_test.json --samples $R/samples_big_ctl_test \
           > $R/big_ctl_test.log 2>&1;;
  esac
done
