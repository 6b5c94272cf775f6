# Issue 21's GPU session of 2026-12-03 (it ran as bench/sessions/next-issue21.sh), one H200: the
# driver started at 08:08:10, both runs' data were prepared by 08:11:21, M ended at 08:26:26, L at
# 08:26:52 (BENCHMARKS.md, "Runs L and M"). As planned then, about 24 minutes:
#   bash bench/gpu_detached.sh start bench/sessions/next-issue21.sh; bash bench/gpu_detached.sh poll 540
#   bash bench/gpu_detached.sh poll 560   # again at once (a gap over 30 s loses the machine)
# Runs D-K all end at the answer prior for the views: the full sheets' views follow a layout set
# by how many there are, and no run counts them better than the constant answer (K's warmup,
# views alone, neither). Both runs here add sheets whose answer the prior cannot give
# (lp-scatter.yaml: `scatter`, 12,000 sheets drawn with object_scale 0.7, each of a grid of
# nine cells independently filled), at run H's rates (lp-headstart2.yaml):
# L: the scatter sheets alone first (2 epochs), then the full sheets from its merged model
# (lp-scatter-first.yaml); the warmup is scored on the full sheets too (--score-also warmup).
# M: both datasets at once, 3 epochs (about 2,230 steps of 32).
# Each prepares two datasets of 12,000 sheets (about 3-4 minutes side by side), then trains.
# (Run J, H's rates on twice the full sheets, lp-24k.yaml, is the one after.)
source bench/sessions/lp_pair.sh
L="--family qwen3_vl --override bench/overrides/lp-12k.yaml --override bench/overrides/lp-vision.yaml --override bench/overrides/lp-headstart2.yaml --override bench/overrides/lp-scatter.yaml --override bench/overrides/lp-scatter-first.yaml --override bench/overrides/lp-score128.yaml --score-also warmup --curve --curve-every 1 --workdir bench/runs/lpL --key qwen3_vl-scatter-first --out $R/lpL.json"
M="--family qwen3_vl --override bench/overrides/lp-12k.yaml --override bench/overrides/lp-vision.yaml --override bench/overrides/lp-headstart2.yaml --override bench/overrides/lp-scatter.yaml --override bench/overrides/lp-score128.yaml --curve --curve-every 1 --workdir bench/runs/lpM --key qwen3_vl-scatter-mix --out $R/lpM.json"
{ lp_prep L "$L"; lp_go L "$L"; } &
{ lp_prep M "$M"; lp_go M "$M"; } &
wait
st done
