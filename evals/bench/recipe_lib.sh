# Shell helpers shared by the bench scripts that reuse the default pack's recipe. Source it after
# `cd` to the repository root:  . evals/bench/recipe_lib.sh
#   ovr KEY   prints the override list KEY of configs/pack/default.yaml on one line, so a bench
#             script follows the recipe when it changes (call it on its own line: under `set -e` the
#             script stops there if the recipe cannot be read)
#   keep PATH succeeds, with a note on stderr, when PATH exists: `keep X || make X` skips a
#             finished stage. A kept stage is NOT checked against the current recipe.
ovr() { .venv/bin/python -c "import yaml; print(' '.join(yaml.safe_load(open('configs/pack/default.yaml'))['$1']))"; }
keep() { [ -e "$1" ] && echo "keeping $1 (delete it to redo that stage)" >&2; }
