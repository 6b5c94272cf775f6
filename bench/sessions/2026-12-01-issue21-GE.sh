# Issue 21, GPU session of 2026-12-01 (night), one H200. Ran as
#   bash bench/gpu_detached.sh start bench/sessions/2026-12-01-issue21-GE.sh; bash bench/gpu_detached.sh poll 540
#   bash bench/gpu_detached.sh poll 560   # again at once, until the status says done
# G: the head start (lp-headstart.yaml, run F: mAP50 0.471, the first run whose answers follow
# the drawing) with twice the steps (lp-long.yaml: 6 epochs, 2,208 steps of 32); E: the
# qwen2_5_vl path with the vision lever and the head start, 3 epochs. The same shape as the
# session of runs D and F (bench/sessions/2026-12-01-issue21-DF.sh: 22 minutes from the start):
# the data of both are prepared first (CPU), then both train at once on the one GPU; E ends
# first, and its result comes back with the next poll. (It did not: E trained at ~1.1 steps/s,
# a third of G's speed, and was predicting when the lease's 30 minutes ran out; BENCHMARKS.md.)
# After each run, rules() writes
# $R/lp<run>-rules.log: every rule's seconds (Snakemake's benchmark files) and the end of the
# trained model's test prediction log, to see where predict_split's ~1.5 min go.
LP=bench/learning_proof.py
G="--family qwen3_vl --override bench/overrides/lp-12k.yaml --override bench/overrides/lp-vision.yaml --override bench/overrides/lp-headstart.yaml --override bench/overrides/lp-long.yaml --curve --curve-every 2 --workdir bench/runs/lpG --key qwen3_vl-headstart-long --out $R/lpG.json"
E="--family qwen2_5_vl --override bench/overrides/lp-12k.yaml --override bench/overrides/lp-vision.yaml --override bench/overrides/lp-qwen2_5_vl.yaml --override bench/overrides/lp-headstart.yaml --curve --curve-every 1 --workdir bench/runs/lpE --key qwen2_5_vl-vision-headstart --out $R/lpE.json"
U="--until convert_annotations build_tiny_model"
rules() {
  local wd=bench/runs/lp$1
  { for f in $(find "$wd/benchmarks" -name '*.tsv' | sort); do
      echo "${f#"$wd"/benchmarks/} $(tail -n 1 "$f" | cut -f 1)"
    done
    echo "== logs/predict_split/demo/test.log"
    tail -n 150 "$wd/logs/predict_split/demo/test.log"; } > "$R/lp$1-rules.log" 2>&1
}
(python3 $LP $G $U > $R/lpG-prep.log 2>&1; st "G prep rc=$?") &
(python3 $LP $E $U > $R/lpE-prep.log 2>&1; st "E prep rc=$?") &
wait
(python3 $LP $G --keep-workdir > $R/lpG.log 2>&1; st "G rc=$?"; rules G) &
(python3 $LP $E --keep-workdir > $R/lpE.log 2>&1; st "E rc=$?"; rules E) &
wait
st done
