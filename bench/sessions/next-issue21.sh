# Issue 21's next GPU session (prepared 2026-12-01, not run yet), one H200, about 25 minutes:
#   bash bench/gpu_detached.sh start bench/sessions/next-issue21.sh; bash bench/gpu_detached.sh poll 540
#   bash bench/gpu_detached.sh poll 560   # again at once, until the status says done
# D: the vision lever with 2.7x the steps; E: the qwen2_5_vl path with the vision lever; F: the
# vision lever with a learning-rate head start for the vision tower. The data of all three are
# prepared first (CPU), then the three train at once on the one GPU (small models: none of them
# fills it). E and F end first and their results come back with the next poll even if D runs out
# of time.
LP=bench/learning_proof.py
D="--family qwen3_vl --override bench/overrides/lp-12k.yaml --override bench/overrides/lp-vision.yaml --override bench/overrides/lp-long.yaml --curve --curve-every 2 --workdir bench/runs/lpD --key qwen3_vl-vision-long --out $R/lpD.json"
E="--family qwen2_5_vl --override bench/overrides/lp-12k.yaml --override bench/overrides/lp-vision.yaml --override bench/overrides/lp-qwen2_5_vl.yaml --curve --curve-every 1 --workdir bench/runs/lpE --key qwen2_5_vl-vision --out $R/lpE.json"
F="--family qwen3_vl --override bench/overrides/lp-12k.yaml --override bench/overrides/lp-vision.yaml --override bench/overrides/lp-headstart.yaml --curve --curve-every 1 --workdir bench/runs/lpF --key qwen3_vl-vision-headstart --out $R/lpF.json"
U="--until convert_annotations build_tiny_model"
(python3 $LP $D $U > $R/lpD-prep.log 2>&1; st "D prep rc=$?") &
(python3 $LP $E $U > $R/lpE-prep.log 2>&1; st "E prep rc=$?") &
(python3 $LP $F $U > $R/lpF-prep.log 2>&1; st "F prep rc=$?") &
wait
(python3 $LP $D --keep-workdir > $R/lpD.log 2>&1; st "D rc=$?") &
(python3 $LP $E --keep-workdir > $R/lpE.log 2>&1; st "E rc=$?") &
(python3 $LP $F --keep-workdir > $R/lpF.log 2>&1; st "F rc=$?") &
wait
st done
