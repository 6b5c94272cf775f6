# Issue 21's next GPU session (prepared 2026-12-02, not run yet), one H200, about 26 minutes:
#   bash bench/gpu_detached.sh start bench/sessions/next-issue21.sh; bash bench/gpu_detached.sh poll 540
#   bash bench/gpu_detached.sh poll 560   # again at once, then once more for what is left
# E: the qwen2_5_vl path with run F's recipe, a third time. In 2026-12-02-issue21-EHI.sh its
# training took 22 min and its last prediction ran out of lease by about a minute; now it starts
# training as soon as its own data are ready, and bench/learning_proof.py runs two GPU rules at
# once (the untrained model's predictions beside training, the trained model's validation and
# test predictions beside each other), which takes about 3 min off its end.
# K: a first stage that learns the views alone (lp-views-first.yaml: 12,000 other sheets with
# the fixed-place boxes dropped, all of them in train through `holdout: false`), at run H's
# rates, then the full sheets from its merged model; the warmup is scored on the full sheets
# too (--score-also warmup), so its views AP says whether views can be learned when they are
# the whole answer. (Run J, H's rates on twice the sheets, lp-24k.yaml, is the one after.)
# After K, about a minute: bench/gpu_vit_timing.py times the three tiny vision towers alone
# (qwen2_5_vl windowed, the same with full attention, qwen3_vl), beside E's last steps, for why
# E trains at a third of K's speed.
source bench/sessions/lp_pair.sh
E="--family qwen2_5_vl --override bench/overrides/lp-12k.yaml --override bench/overrides/lp-vision.yaml --override bench/overrides/lp-qwen2_5_vl.yaml --override bench/overrides/lp-headstart.yaml --override bench/overrides/lp-score128.yaml --curve --curve-every 3 --workdir bench/runs/lpE --key qwen2_5_vl-vision-headstart --out $R/lpE.json"
K="--family qwen3_vl --override bench/overrides/lp-12k.yaml --override bench/overrides/lp-vision.yaml --override bench/overrides/lp-headstart2.yaml --override bench/overrides/lp-views-first.yaml --override bench/overrides/lp-score128.yaml --score-also warmup --curve --curve-every 1 --workdir bench/runs/lpK --key qwen3_vl-views-first --out $R/lpK.json"
{ lp_prep E "$E"; lp_go E "$E"; } &
{ lp_prep K "$K"; lp_go K "$K"
  python3 bench/gpu_vit_timing.py --out "$R" > "$R/vit.log" 2>&1; st "vit rc=$?"; } &
wait
st done
