# Issue 21's GPU session of 2026-12-02 (third session; it ran as bench/sessions/next-issue21.sh),
# one H200: the machine started at 13:34:44, E ended at 13:46:12, K at 13:51:54 (BENCHMARKS.md,
# "Runs E and K"). As planned then, about 26 minutes:
#   bash bench/gpu_detached.sh start bench/sessions/next-issue21.sh; bash bench/gpu_detached.sh poll 540
#   bash bench/gpu_detached.sh poll 560   # again at once, then once more for what is left
# (Its first try, 2026-12-02, was lost with its machine when a delay between two calls left it
# idle: E and K had prepared and were training.)
# First, beside the two runs' data preparation (CPU): bench/gpu_vit_timing.py --real, about
# 2 minutes: the tiny vision towers and Qwen2.5-VL-7B's with transformers' SDPA (one call per
# window) and with drawtune's one varlen call per block (training.vision_varlen), in one
# process, with the varlen call's error against SDPA (BENCHMARKS.md, "Vision attention").
# E: the qwen2_5_vl path with run F's recipe. Its training took 22 min with SDPA per window;
# with vision_varlen (auto: on, the GPU machine has no flash-attn) its tower is 13x faster.
# bench/learning_proof.py runs two GPU rules at once (the untrained model's predictions beside
# training, the trained model's validation and test predictions beside each other).
# K: a first stage that learns the views alone (lp-views-first.yaml: 12,000 other sheets with
# the fixed-place boxes dropped, all of them in train through `holdout: false`), at run H's
# rates, then the full sheets from its merged model; the warmup is scored on the full sheets
# too (--score-also warmup), so its views AP says whether views can be learned when they are
# the whole answer. (Run J, H's rates on twice the sheets, lp-24k.yaml, is the one after.)
source bench/sessions/lp_pair.sh
E="--family qwen2_5_vl --override bench/overrides/lp-12k.yaml --override bench/overrides/lp-vision.yaml --override bench/overrides/lp-qwen2_5_vl.yaml --override bench/overrides/lp-headstart.yaml --override bench/overrides/lp-score128.yaml --curve --curve-every 3 --workdir bench/runs/lpE --key qwen2_5_vl-vision-headstart --out $R/lpE.json"
K="--family qwen3_vl --override bench/overrides/lp-12k.yaml --override bench/overrides/lp-vision.yaml --override bench/overrides/lp-headstart2.yaml --override bench/overrides/lp-views-first.yaml --override bench/overrides/lp-score128.yaml --score-also warmup --curve --curve-every 1 --workdir bench/runs/lpK --key qwen3_vl-views-first --out $R/lpK.json"
{ python3 bench/gpu_vit_timing.py --out "$R" --real > "$R/vit.log" 2>&1; st "vit rc=$?"; } &
{ lp_prep E "$E"; lp_go E "$E"; } &
{ lp_prep K "$K"; lp_go K "$K"; } &
wait
st done
