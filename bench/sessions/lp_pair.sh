# Sourced by the learning-proof jobs files (bench/gpu_detached.sh runs them from the repo root,
# with $R the folder that comes back and st() its status line): runs of
# bench/learning_proof.py on one GPU. A run's data are prepared first (CPU work: drawing the
# sheets, converting, building the tiny model), then it trains and is scored; its result is in
# $R/lp<name>.json when its status line says rc=0. Two runs side by side:
#   source bench/sessions/lp_pair.sh
#   { lp_prep A "ARGS_A"; lp_go A "ARGS_A"; } & { lp_prep B "ARGS_B"; lp_go B "ARGS_B"; } & wait
# ARGS need --workdir bench/runs/lp<NAME> and --out $R/lp<NAME>.json. A run that goes on in
# another run's folder (same data, other training settings) names it: lp_go NAME "ARGS" DIRNAME,
# with --workdir bench/runs/lp<DIRNAME> in ARGS, after that run has ended. After each run,
# $R/lp<NAME>-rules.log has every rule's seconds (Snakemake's benchmark files) and the end of
# the trained model's test prediction log.
lp_rules() {
  local wd=bench/runs/lp${2:-$1}
  { for f in $(find "$wd/benchmarks" -name '*.tsv' | sort); do
      echo "${f#"$wd"/benchmarks/} $(tail -n 1 "$f" | cut -f 1)"
    done
    echo "== logs/predict_split/demo/test.log"
    tail -n 40 "$wd/logs/predict_split/demo/test.log"; } > "$R/lp$1-rules.log" 2>&1
}
# lp_prep NAME "ARGS": the CPU steps of one run
lp_prep() {
  # shellcheck disable=SC2086  # the arguments are one string of words
  python3 bench/learning_proof.py $2 --until convert_annotations build_tiny_model \
    > "$R/lp$1-prep.log" 2>&1
  st "$1 prep rc=$?"
}
# lp_go NAME "ARGS" [DIRNAME]: train and score one run in its prepared folder
lp_go() {
  # shellcheck disable=SC2086
  python3 bench/learning_proof.py $2 --keep-workdir > "$R/lp$1.log" 2>&1
  st "$1 rc=$?"
  lp_rules "$1" "${3:-$1}"
}
