# Issue 21's GPU session of 2026-12-03 (second that day; it ran as bench/sessions/next-issue21.sh),
# one H200: the driver started at 13:14:18, both runs' data were prepared by 13:17:55, O died at
# 13:23:28 in calibrate_scores (the second device call rewrote the working tree while the rule
# imported drawtune: FileNotFoundError drawtune/data/images.py; gpu_detached.sh now runs the jobs
# from a copy, /tmp/src) and its snakemake ended at 13:34:31 after its training; N ended at
# 13:38:13 with mAP50 0.524 (BENCHMARKS.md, "Run N"). As planned then:
#   bash bench/gpu_detached.sh start bench/sessions/next-issue21.sh; bash bench/gpu_detached.sh poll 540
#   bash bench/gpu_detached.sh poll 560   # again at once (a gap over 30 s loses the machine)
#   bash bench/gpu_detached.sh poll 560   # once more, the last no later than budget_left_s - 30
# Run M (the full sheets and the scatter sheets mixed, run H's rates, 3 epochs) is the first run
# that reads the views off the drawing (views AP50 0.38, counted right 38 % against the constant
# answer's 28 %) and ends at mAP50 0.491, still rising. Both runs here are M for 4 epochs
# (lp-epochs4.yaml, about 2,970 steps), with two training seeds, so that whether the recipe
# crosses 0.5 is not one seed's luck:
# N: seed 42 (M's), every epoch scored.
# O: seed 7 (lp-seed2.yaml), epochs 2 and 4 scored (less scoring, so both end inside the lease).
# Each prepares two datasets of 12,000 sheets (about 3 minutes side by side), then trains
# (about 16 minutes side by side).
source bench/sessions/lp_pair.sh
C="--family qwen3_vl --override bench/overrides/lp-12k.yaml --override bench/overrides/lp-vision.yaml --override bench/overrides/lp-headstart2.yaml --override bench/overrides/lp-scatter.yaml --override bench/overrides/lp-epochs4.yaml"
N="$C --override bench/overrides/lp-score128.yaml --curve --curve-every 1 --workdir bench/runs/lpN --key qwen3_vl-scatter-mix4 --out $R/lpN.json"
O="$C --override bench/overrides/lp-seed2.yaml --override bench/overrides/lp-score128.yaml --curve --curve-every 2 --workdir bench/runs/lpO --key qwen3_vl-scatter-mix4-seed7 --out $R/lpO.json"
{ lp_prep N "$N"; lp_go N "$N"; } &
{ lp_prep O "$O"; lp_go O "$O"; } &
wait
st done
