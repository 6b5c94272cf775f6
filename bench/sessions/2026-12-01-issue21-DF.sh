# Issue 21, GPU session of 2026-12-01 (evening), one H200, about 26 minutes:
#   bash bench/gpu_detached.sh start bench/sessions/2026-12-01-issue21-DF.sh; bash bench/gpu_detached.sh poll 540
#   bash bench/gpu_detached.sh poll 560   # again at once, until the status says done
# D: the vision lever with twice the steps (lp-long.yaml: 12,000 sheets, 6 epochs); F: the
# vision lever with a learning-rate head start for the vision tower (lp-headstart.yaml), the
# same steps as run 4. The data of both are prepared first (CPU), then both train at once on the
# one GPU (small models: neither fills it). F ends first, and its result comes back with the
# next poll. The qwen2_5_vl run (E) waits for the recipe that reaches the goal: three runs at once
# do not fit one lease.
LP=bench/learning_proof.py
D="--family qwen3_vl --override bench/overrides/lp-12k.yaml --override bench/overrides/lp-vision.yaml --override bench/overrides/lp-long.yaml --curve --curve-every 2 --workdir bench/runs/lpD --key qwen3_vl-vision-long --out $R/lpD.json"
F="--family qwen3_vl --override bench/overrides/lp-12k.yaml --override bench/overrides/lp-vision.yaml --override bench/overrides/lp-headstart.yaml --curve --curve-every 1 --workdir bench/runs/lpF --key qwen3_vl-vision-headstart --out $R/lpF.json"
U="--until convert_annotations build_tiny_model"
(python3 $LP $D $U > $R/lpD-prep.log 2>&1; st "D prep rc=$?") &
(python3 $LP $F $U > $R/lpF-prep.log 2>&1; st "F prep rc=$?") &
wait
(python3 $LP $D --keep-workdir > $R/lpD.log 2>&1; st "D rc=$?") &
(python3 $LP $F --keep-workdir > $R/lpF.log 2>&1; st "F rc=$?") &
wait
st done
