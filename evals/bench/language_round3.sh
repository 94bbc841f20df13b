#!/bin/bash
# A third stage-2 round for the v11 language module: does the mix, not the amount, keep it from
# counting? The v11 module (two stage-2 rounds of the pack's 22-template mix) counts at 40.5 on test
# while 500 steps of counting alone reach 67.6 (docs/benchmarks.md, "What the object slots hold",
# part 3). Each variant continues v11's language module (runs/l8/norm_cont/final, v11's shipped
# cogarch/assets/default_pack/language) with the pack's stage-2 overrides, 1 thread, seed 0:
#   r3    3000 more steps of the full mix (the control: what a third round gives by itself)
#   hard  1500 steps on the four templates the slot rules read far better than the module
#         (desc_count, desc_first_hit, desc_collide, desc_moving_end), then the r3 round on top
#         (a curriculum: does a learned reading survive the mix?) -> hard (the first part), hard_mix
#   rep   the r3 round with those four templates oversampled (template_repeat: count and first_hit
#         x4, collide and moving_end x2: 64 % of the examples instead of 38 %)
#   rep2  the r3 round with counting alone oversampled (template_repeat.desc_count=4: 27 % of the
#         examples instead of 8.6 %), the only one of the four a reader learned in hard and rep
#   blind the v11 blind LM (two rounds) given the r3 round, the rep2 round and hard's curriculum
#         (blind_r3, blind_rep2, blind_hard -> blind_hard_mix): the baselines of the same recipes,
#         each scored beside its model
# and scores each on the pack's val and test splits (evals/bench/lang_eval.py --samples, for
# evals/bench/paired.py). Results: docs/benchmarks.md, "What the object slots hold", part 4.
#   bash evals/bench/language_round3.sh [OUT_DIR] [VARIANT ...]     (default: runs/l9, r3 hard rep rep2 blind)
# Needs runs/l7/features (evals/bench/language_variants.sh makes it), runs/l8/norm_cont/final and
# runs/l8/blind_r2/final (v11's language module and blind LM; since v12 ships, take them from the
# commit that shipped v11: git archive 422d4f3 cogarch/assets/default_pack | tar -x -C /tmp/v11, then
# cp -r /tmp/v11/cogarch/assets/default_pack/language runs/l8/norm_cont/final, language_blind likewise).
# `blind` scores each blind LM beside its model: list r3, rep2 and hard before it, or have them done.
set -e
cd "$(dirname "$0")/../.."
. evals/bench/recipe_lib.sh
R=${1:-runs/l9}; shift || true
VARIANTS=${*:-r3 hard rep rep2 blind}
variants_ok "$VARIANTS" r3 hard rep rep2 blind  # checked before any work
needs_runs blind "$VARIANTS" r3 rep2 hard:hard_mix
FROM=runs/l8/norm_cont/final
BLIND=runs/l8/blind_r2/final
[ -f $FROM/language_config.json ] || { echo "error: no v11 language module at $FROM" >&2; exit 2; }
[ -f $BLIND/language_config.json ] || { echo "error: no v11 blind LM at $BLIND" >&2; exit 2; }
[ -d runs/l7/features ] || { echo "error: no runs/l7/features (run evals/bench/language_variants.sh runs/l7 norm)" >&2; exit 2; }
bench_suites physqa
S2=$(ovr stage2_overrides)
C="model.base_lm=cogarch/assets/default_pack/language/base data_dir=$PHYSQA features_dir=runs/l7/features trainer.seed=0 \
model.pool_per_kind.forecast=none trainer.progress=false"
HARD="templates=[desc_count,desc_first_hit,desc_collide,desc_moving_end]"
W="template_repeat.desc_count=4 template_repeat.desc_first_hit=4 template_repeat.desc_collide=2 template_repeat.desc_moving_end=2"
W2="template_repeat.desc_count=4"
export OMP_NUM_THREADS=1
mkdir -p $R
for v in $VARIANTS; do
  case $v in
    r3) lang_round r3 $FROM trainer.max_steps=3000; lang_score r3;;
    hard) lang_round hard $FROM "$HARD" trainer.max_steps=1500 trainer.ckpt_every=500; lang_score hard
          lang_round hard_mix $R/hard/final trainer.max_steps=3000; lang_score hard_mix;;
    rep) lang_round rep $FROM $W trainer.max_steps=3000; lang_score rep;;
    rep2) lang_round rep2 $FROM $W2 trainer.max_steps=3000; lang_score rep2;;
    blind) lang_round blind_r3 $BLIND blind=true trainer.max_steps=3000; lang_score r3 blind_r3
           lang_round blind_rep2 $BLIND blind=true $W2 trainer.max_steps=3000; lang_score rep2 blind_rep2
           lang_round blind_hard $BLIND blind=true "$HARD" trainer.max_steps=1500 trainer.ckpt_every=500
           lang_round blind_hard_mix $R/blind_hard/final blind=true trainer.max_steps=3000; lang_score hard_mix blind_hard_mix;;
  esac
done
