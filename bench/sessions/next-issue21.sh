# Issue 21's next GPU session (prepared 2026-12-02, not run yet), one H200, about 26 minutes:
#   bash bench/gpu_detached.sh start bench/sessions/next-issue21.sh; bash bench/gpu_detached.sh poll 540
#   bash bench/gpu_detached.sh poll 560   # again at once, then once more for what is left
# E: the qwen2_5_vl path with run F's recipe, a third time. In 2026-12-02-issue21-EHI.sh its
# training took 22 min and its last prediction ran out of lease by about a minute; now it starts
# training as soon as its own data are ready, and bench/learning_proof.py runs two GPU rules at
# once (the untrained model's predictions beside training, the trained model's validation and
# test predictions beside each other), which takes about 3 min off its end.
# J: run H's head start (lp-headstart2.yaml, the best so far: mAP50 0.478, tables read right on
# every sheet, views 0.23 and rising along the curve) on twice the sheets for the same 3 epochs
# (lp-24k.yaml: 2,208 steps), the curve every epoch at the trained image size.
source bench/sessions/lp_pair.sh
E="--family qwen2_5_vl --override bench/overrides/lp-12k.yaml --override bench/overrides/lp-vision.yaml --override bench/overrides/lp-qwen2_5_vl.yaml --override bench/overrides/lp-headstart.yaml --override bench/overrides/lp-score128.yaml --curve --curve-every 3 --workdir bench/runs/lpE --key qwen2_5_vl-vision-headstart --out $R/lpE.json"
J="--family qwen3_vl --override bench/overrides/lp-12k.yaml --override bench/overrides/lp-vision.yaml --override bench/overrides/lp-headstart2.yaml --override bench/overrides/lp-24k.yaml --override bench/overrides/lp-score128.yaml --curve --curve-every 1 --workdir bench/runs/lpJ --key qwen3_vl-headstart2-24k --out $R/lpJ.json"
{ lp_prep E "$E"; lp_go E "$E"; } &
{ lp_prep J "$J"; lp_go J "$J"; } &
wait
st done
