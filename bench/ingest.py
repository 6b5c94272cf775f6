"""Ingestion at scale: 10,000 synthetic drawings through validate -> split -> convert.

Reports conversion throughput, the time a no-op ``snakemake`` takes to decide there is nothing to
do, and what adding one drawing reprocesses. Usage (repository root, inside .venv):

    python bench/ingest.py [--n 10000] [--width 448] [--cores 2] [--reuse-data] [--no-fingerprints]

Writes bench/results/ingest.json; BENCHMARKS.md records the numbers with the machine.
Fingerprinting (issue 19, ``leakage.fingerprints``) is on unless ``--no-fingerprints``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from drawtune.data.synth import draw_sheet, write_dataset  # noqa: E402

PARTS = ("Snakefile", "rules", "scripts", "config", "report", "envs", "profiles")
TARGETS = [f"results/swift/demo/{s}.jsonl" for s in ("train", "val", "test")]


def snakemake(wd: Path, cores: int, *extra: str) -> tuple[float, str]:
    cmd = [shutil.which("snakemake") or "snakemake", *TARGETS, "--cores", str(cores)]
    cmd += ["--configfile", "config/config.yaml", *extra]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=wd, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if p.returncode:
        sys.exit(f"snakemake failed:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return dt, p.stdout + p.stderr


def jobs_run(log: str) -> dict:
    """Rule -> count from Snakemake's job-stats table."""
    out = {}
    for line in log.splitlines():
        m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if m and m.group(1) != "total":
            out[m.group(1)] = int(m.group(2))
    return out


def decoded(wd: Path, what: str = "images decoded") -> str | None:
    text = (wd / "logs/validate_annotations/data.log").read_text()
    found = re.findall(what + r": \d+ of \d+", text)
    return found[-1] if found else None


def bench_seconds(wd: Path, rule: str, name: str) -> float:
    rows = list(csv.DictReader((wd / f"benchmarks/{rule}/{name}.tsv").open(), delimiter="\t"))
    return float(rows[0]["s"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--width", type=int, default=448)
    ap.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--workdir", type=Path, default=ROOT / "bench/runs/ingest")
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results/ingest.json")
    ap.add_argument("--reuse-data", action="store_true", help="keep the drawings of a previous run")
    ap.add_argument("--no-fingerprints", action="store_true", help="leakage.fingerprints: false")
    a = ap.parse_args()
    wd = a.workdir
    data = wd / "data"
    reuse = a.reuse_data and (data / "synth.json").is_file()
    if reuse:  # keep the generated drawings (minutes for 10,000), start the workflow afresh
        for p in wd.iterdir():
            if p.name != "data":
                shutil.rmtree(p) if p.is_dir() else p.unlink()
    elif wd.exists():
        shutil.rmtree(wd)
    wd.mkdir(parents=True, exist_ok=True)
    for p in PARTS:
        (shutil.copytree if (ROOT / p).is_dir() else shutil.copy2)(ROOT / p, wd / p)
    t0 = time.perf_counter()
    if reuse:
        coco = json.loads((data / "synth.json").read_text())
        (data / "annotations.json").write_text(json.dumps(coco))
        for extra in (data / "images").glob("added_*"):
            extra.unlink()
    else:
        coco = write_dataset(data, n=a.n, seed=7, width=a.width, workers=a.cores)
        (data / "synth.json").write_text(json.dumps(coco))
    synth_s = time.perf_counter() - t0
    # a real (non-synthetic) COCO dataset as a user would point at it
    cfg = yaml.safe_load((wd / "config/config.yaml").read_text())
    cfg["datasets"] = {"data": {"format": "coco", "annotations": "data/annotations.json"}}
    cfg["experiments"] = {"demo": cfg["experiments"]["demo"]}  # the detection experiment
    if a.no_fingerprints:
        cfg["leakage"] = {"fingerprints": False}
    (wd / "config/config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))

    cold_s, _ = snakemake(wd, a.cores)
    validate_s = bench_seconds(wd, "validate_annotations", "data")
    split_s = bench_seconds(wd, "split_dataset", "split")
    cold_decoded = decoded(wd)
    cold_fingerprinted = decoded(wd, "fingerprints computed")
    leakage = json.loads((wd / "results/splits/leakage.json").read_text())

    noop_s, noop_log = snakemake(wd, a.cores)
    assert "Nothing to be done" in noop_log, noop_log[-2000:]
    dry_s, _ = snakemake(wd, a.cores, "-n")

    # add one drawing (image + annotation), as a user dropping a file into the folder would
    img, boxes = draw_sheet(99, 1, a.width)
    name = "images/added_0001.png"
    img.save(wd / "data" / name)
    coco["images"].append(
        {"id": a.n + 1, "file_name": name, "width": img.width, "height": img.height}
    )
    cats = {c["name"]: c["id"] for c in coco["categories"]}
    nid = max(x["id"] for x in coco["annotations"]) + 1
    for k, (label, (x1, y1, x2, y2)) in enumerate(boxes):
        coco["annotations"].append(
            {
                "id": nid + k,
                "image_id": a.n + 1,
                "category_id": cats[label],
                "bbox": [x1, y1, x2 - x1, y2 - y1],
                "area": (x2 - x1) * (y2 - y1),
                "iscrowd": 0,
            }
        )
    (wd / "data/annotations.json").write_text(json.dumps(coco))
    add_s, add_log = snakemake(wd, a.cores)
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "n_drawings": a.n,
        "width": a.width,
        "cores": a.cores,
        "synth_seconds": None if reuse else round(synth_s, 1),
        "data_reused": reuse,
        "load_average_1min": round(os.getloadavg()[0], 2),
        "cold_run_seconds": round(cold_s, 1),
        "validate_seconds": round(validate_s, 1),
        "validate_drawings_per_second": round(a.n / validate_s, 1),
        "split_seconds": round(split_s, 1),
        "fingerprints": not a.no_fingerprints,
        "cold_decoded": cold_decoded,
        "cold_fingerprinted": cold_fingerprinted,
        "near_duplicate_links": leakage["links"],
        "near_duplicate_leaks": leakage["leaks"],
        "noop_run_seconds": round(noop_s, 2),
        "noop_dry_run_seconds": round(dry_s, 2),
        "add_one_seconds": round(add_s, 1),
        "add_one_decoded": decoded(wd),
        "add_one_fingerprinted": decoded(wd, "fingerprints computed"),
        "add_one_split_seconds": round(bench_seconds(wd, "split_dataset", "split"), 1),
        "add_one_jobs": jobs_run(add_log),
    }
    print(json.dumps(result, indent=2))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
