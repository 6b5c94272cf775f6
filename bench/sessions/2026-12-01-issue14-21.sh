# The jobs of the 2026-12-01 GPU session (one H200). They ran from an equivalent ad-hoc driver;
# bench/gpu_detached.sh, written from it after the run, runs them so:
#   bash bench/gpu_detached.sh start bench/sessions/2026-12-01-issue14-21.sh; bash bench/gpu_detached.sh poll 540
# Issue 14's ZeRO-3 run alone on the GPU while the two learning-proof runs of issue 21 prepare
# their data on the CPUs (--until), then both learning-proof runs at once. (`--key` came after the
# run: its two results were filed under these keys in bench/results/learning_proof.json by hand.)
LP=bench/learning_proof.py
B="--family qwen3_vl --override bench/overrides/lp-12k.yaml --override bench/overrides/lp-vision.yaml --curve --curve-every 1 --workdir bench/runs/lpB --key qwen3_vl-vision --out $R/lpB.json"
C="--family qwen3_vl --override bench/overrides/lp-curriculum.yaml --override bench/overrides/lp-vision.yaml --override bench/overrides/lp-curriculum-vision.yaml --curve --curve-every 1 --workdir bench/runs/lpC --key qwen3_vl-curriculum-vision --out $R/lpC.json"
U="--until convert_annotations build_tiny_model"
(python3 bench/gpu_deepspeed.py --out $R/ds --n 200 --stages zero3 > $R/ds.log 2>&1; st "ds rc=$?") &
(python3 $LP $B $U > $R/lpB-prep.log 2>&1; st "B prep rc=$?") &
(python3 $LP $C $U > $R/lpC-prep.log 2>&1; st "C prep rc=$?") &
wait
(python3 $LP $B --keep-workdir > $R/lpB.log 2>&1; st "B rc=$?") &
(python3 $LP $C --keep-workdir > $R/lpC.log 2>&1; st "C rc=$?") &
wait
st done
