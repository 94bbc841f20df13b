"""Language module: a local causal LM + LoRA that reads bus messages through per-kind projectors.

Public entry points: `model.LanguageModule` (build / from_pretrained / save_pretrained / answer /
score_choices / step), `scoring.LanguageScorer` (eval runner adapter), `merge.merge`, and the
training jobs `pretrain` (`cogarch train language-pretrain`) and `train` (`cogarch train language`).
"""
