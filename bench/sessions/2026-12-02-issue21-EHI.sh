# Issue 21: the GPU session of runs E, H and I (2026-12-02, one H200), until then next-issue21.sh;
# as it ran: H and I came back, E trained (22 min) and ran out of lease while predicting. Run:
#   bash bench/gpu_detached.sh start bench/sessions/next-issue21.sh; bash bench/gpu_detached.sh poll 540
#   bash bench/gpu_detached.sh poll 560   # again at once, twice, until the status says done
# E: the qwen2_5_vl path with run F's recipe (the vision lever and the head start), as in the
# session of runs G and E (2026-12-01-issue21-GE.sh), where E trained at ~1.1 steps/s, beside G
# or alone, and did not finish scoring inside the lease: here with no checkpoint on its curve
# but the last (1,104 steps, about 17 min) and every prediction in one batch of 128
# (lp-score128.yaml). H: a larger head start for qwen3_vl (lp-headstart2.yaml: vision 3e-3,
# language model 1e-4), with the curve now predicted at the run's own image size. I, after H in
# H's folder (same data, the untrained model's score kept): run F again with another training
# seed (lp-seed2.yaml), to tell F's recipe from one seed's luck.
source bench/sessions/lp_pair.sh
E="--family qwen2_5_vl --override bench/overrides/lp-12k.yaml --override bench/overrides/lp-vision.yaml --override bench/overrides/lp-qwen2_5_vl.yaml --override bench/overrides/lp-headstart.yaml --override bench/overrides/lp-score128.yaml --curve --curve-every 3 --workdir bench/runs/lpE --key qwen2_5_vl-vision-headstart --out $R/lpE.json"
H="--family qwen3_vl --override bench/overrides/lp-12k.yaml --override bench/overrides/lp-vision.yaml --override bench/overrides/lp-headstart2.yaml --override bench/overrides/lp-score128.yaml --curve --curve-every 1 --workdir bench/runs/lpH --key qwen3_vl-headstart2 --out $R/lpH.json"
I="--family qwen3_vl --override bench/overrides/lp-12k.yaml --override bench/overrides/lp-vision.yaml --override bench/overrides/lp-headstart.yaml --override bench/overrides/lp-score128.yaml --override bench/overrides/lp-seed2.yaml --curve --curve-every 3 --workdir bench/runs/lpH --key qwen3_vl-headstart-seed7 --out $R/lpI.json"
lp_prep E "$E" &
lp_prep H "$H" &
wait
lp_go E "$E" &
{ lp_go H "$H"; lp_go I "$I" H; } &
wait
st done
