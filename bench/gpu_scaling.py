"""Two-GPU scaling of the workflow's own train rule (issue 15): the speed experiment of
bench/gpu_speed.py (random Qwen3-VL-4B-shaped model, LoRA r8, 1024 px drawings, the settings the
GPU speed issue chose) run three times with the same global batch:

1. ``one``: one GPU (``CUDA_VISIBLE_DEVICES=0``), ``deepspeed: none``;
2. ``zero2``: two GPUs (``CUDA_VISIBLE_DEVICES=0,1``), ``deepspeed: auto`` (ZeRO-2);
3. ``zero3``: two GPUs, ``deepspeed: zero3``.

On a machine with two GPUs (the device tool's ``nvidia-h200-x2``; NCCL's NVLink multicast stays
off, as the train rule sets it), with the GPU wheels installed (bench/gpu_wheels.sh):

    python3 bench/gpu_scaling.py --out $OUT --n 200

Writes gpu_scaling.json under --out: per run steady samples/s, peak memory per GPU (sampled
with nvidia-smi every second), the loss curve and its largest difference from the one-GPU run,
and the scaling efficiency of each two-GPU run = samples/s / (2 x samples/s on one GPU). Then,
on the CPU machine, after copying the file to bench/results/:

    python bench/gpu_scaling.py --adopt bench/results/gpu_scaling.json

writes the ZeRO-2 efficiency into bench/throughput.json, which `drawtune estimate` uses instead
of its assumed 90 % (drawtune.train.estimate.scaling_of).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]
from gpu_deepspeed import loss_diffs, measure, prepare  # noqa: E402
from gpu_speed import log  # noqa: E402

# run name -> (CUDA_VISIBLE_DEVICES, the experiment's deepspeed setting)
RUNS = {"one": ("0", "none"), "zero2": ("0,1", "auto"), "zero3": ("0,1", "zero3")}


class MemorySampler:
    """The largest memory.used per GPU (MiB) while it runs, from ``nvidia-smi`` each second."""

    def __init__(self, period: float = 1.0):
        self.period, self.peak = period, {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        smi = shutil.which("nvidia-smi")
        while smi and not self._stop.is_set():
            q = ["--query-gpu=index,memory.used", "--format=csv,noheader,nounits"]
            p = subprocess.run([smi, *q], capture_output=True, text=True)
            for line in p.stdout.splitlines():
                i, used = (x.strip() for x in line.split(","))
                self.peak[i] = max(self.peak.get(i, 0), int(used))
            self._stop.wait(self.period)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def gib(self) -> dict[str, float]:
        return {i: round(mib / 1024, 1) for i, mib in sorted(self.peak.items())}


def efficiencies(res: dict) -> None:
    """Each two-GPU run's scaling efficiency against the one-GPU run."""
    one = (res["runs"].get("one") or {}).get("samples_per_s")
    for name, row in res["runs"].items():
        sps = row.get("samples_per_s")
        if name != "one" and one and sps:
            row["scaling_efficiency"] = round(sps / (2 * one), 3)


def adopt(result: Path, reference: Path) -> dict:
    """Write the measured ZeRO-2 efficiency into the estimate's reference throughput."""
    res = json.loads(result.read_text())
    eff = (res["runs"].get("zero2") or {}).get("scaling_efficiency")
    if not eff:
        raise SystemExit(f"{result}: no measured zero2 scaling_efficiency")
    ref = json.loads(reference.read_text())
    ref["scaling"] = {
        "efficiency": eff,
        "gpus": 2,
        "source": f"{result} (bench/gpu_scaling.py on {res.get('device')}), ZeRO-2",
    }
    reference.write_text(json.dumps(ref, indent=2) + "\n")
    return ref


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.environ.get("OUT", "bench/runs/gpu_scaling-out"))
    ap.add_argument("--n", type=int, default=200, help="synthetic drawings (train+val+test)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--runs", default=",".join(RUNS), help="a subset of " + ",".join(RUNS))
    ap.add_argument("--model-dir", help="an existing model instead of the 4B one")
    ap.add_argument("--adopt", type=Path, help="a gpu_scaling.json to write into the reference")
    ap.add_argument("--reference", type=Path, default=ROOT / "bench" / "throughput.json")
    a = ap.parse_args()
    if a.adopt:
        print(json.dumps(adopt(a.adopt, a.reference)["scaling"]))
        return 0
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    names = a.runs.split(",")
    experiments = {n: {"deepspeed": RUNS[n][1]} for n in names}
    wd, res, per = prepare(out, "gpu_scaling", a.n, experiments, a.model_dir)

    def save():
        (out / "gpu_scaling.json").write_text(json.dumps(res, indent=1) + "\n")

    for name in names:
        devices = RUNS[name][0]
        try:
            with MemorySampler() as mem:
                row = measure(wd, name, per, a.warmup, env={"CUDA_VISIBLE_DEVICES": devices})
        except SystemExit as e:
            res["runs"][name] = {"failed": str(e)}
            save()
            continue
        row["cuda_visible_devices"] = devices
        row["peak_gib_per_gpu"] = mem.gib()
        res["runs"][name] = row
        log(f"{name}: {json.dumps({k: v for k, v in row.items() if k != 'loss'})[:600]}")
        save()
    loss_diffs(res, "one")
    efficiencies(res)
    save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
