# Sourced by the learning-proof jobs files (bench/gpu_detached.sh runs them from the repo root,
# with $R the folder that comes back and st() its status line): two runs of
# bench/learning_proof.py on one GPU. Both runs' data are prepared first, at once (CPU work:
# drawing the sheets, converting, building the tiny model), then both train and are scored at
# once; each run's result is in $R/lp<name>.json when its status line says rc=0.
#   source bench/sessions/lp_pair.sh; lp_pair NAME1 "ARGS1" NAME2 "ARGS2"
# ARGS need --workdir bench/runs/lp<NAME> and --out $R/lp<NAME>.json. After each run,
# $R/lp<NAME>-rules.log has every rule's seconds (Snakemake's benchmark files) and the end of
# the trained model's test prediction log.
lp_rules() {
  local wd=bench/runs/lp$1
  { for f in $(find "$wd/benchmarks" -name '*.tsv' | sort); do
      echo "${f#"$wd"/benchmarks/} $(tail -n 1 "$f" | cut -f 1)"
    done
    echo "== logs/predict_split/demo/test.log"
    tail -n 40 "$wd/logs/predict_split/demo/test.log"; } > "$R/lp$1-rules.log" 2>&1
}
lp_pair() {
  local lp=bench/learning_proof.py until="--until convert_annotations build_tiny_model" n a
  for n in "$1" "$3"; do
    [ "$n" = "$1" ] && a=$2 || a=$4
    # shellcheck disable=SC2086  # the arguments are one string of words
    (python3 $lp $a $until > "$R/lp$n-prep.log" 2>&1; st "$n prep rc=$?") &
  done
  wait
  for n in "$1" "$3"; do
    [ "$n" = "$1" ] && a=$2 || a=$4
    # shellcheck disable=SC2086
    (python3 $lp $a --keep-workdir > "$R/lp$n.log" 2>&1; st "$n rc=$?"; lp_rules "$n") &
  done
  wait
}
