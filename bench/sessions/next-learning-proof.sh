# The learning proof's next GPU session (prepared 2026-12-03, not run yet), one H200, about 27
# minutes (issue 21's goal was reached by run N; these two check it further):
#   bash bench/gpu_detached.sh start bench/sessions/next-learning-proof.sh; bash bench/gpu_detached.sh poll 540
#   bash bench/gpu_detached.sh poll 560   # again at once (a gap over 30 s loses the machine)
#   bash bench/gpu_detached.sh poll 560   # once more, the last no later than budget_left_s - 30
# Run N (M's mix of the full and the scatter sheets, 4 epochs, seed 42) reached mAP50 0.524 with
# views AP50 0.53 and every answer parseable. Its twin with seed 7 (O) died of the device tool's
# rewrite of the working tree (gpu_detached.sh now runs from a copy), so:
# O: N with training seed 7 (lp-seed2.yaml), scored at its end only: is 0.5 the recipe's doing?
# P: the qwen2_5_vl path on N's recipe (run E had F's recipe: 0.370), epochs 2 and 4 scored.
# P trains at about 0.41 s a step beside another run (run E), so about 20 minutes for its 2,972
# steps; if the lease ends first, the poll has brought back its epoch-2 score.
source bench/sessions/lp_pair.sh
O="--family qwen3_vl --override bench/overrides/lp-12k.yaml --override bench/overrides/lp-vision.yaml --override bench/overrides/lp-headstart2.yaml --override bench/overrides/lp-scatter.yaml --override bench/overrides/lp-epochs4.yaml --override bench/overrides/lp-score128.yaml --override bench/overrides/lp-seed2.yaml --curve --curve-every 4 --workdir bench/runs/lpO --key qwen3_vl-scatter-mix4-seed7 --out $R/lpO.json"
P="--family qwen2_5_vl --override bench/overrides/lp-12k.yaml --override bench/overrides/lp-vision.yaml --override bench/overrides/lp-qwen2_5_vl.yaml --override bench/overrides/lp-headstart2.yaml --override bench/overrides/lp-scatter.yaml --override bench/overrides/lp-epochs4.yaml --override bench/overrides/lp-score128.yaml --curve --curve-every 2 --workdir bench/runs/lpP --key qwen2_5_vl-scatter-mix4 --out $R/lpP.json"
{ lp_prep O "$O"; lp_go O "$O"; } &
{ lp_prep P "$P"; lp_go P "$P"; } &
wait
st done
