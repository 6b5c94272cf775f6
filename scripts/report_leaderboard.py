"""Snakemake adapter: the leaderboard page and the report's first page
(drawtune.report.leaderboard)."""

from pathlib import Path

from drawtune.jsonio import load_jsonl, read_json
from drawtune.report.leaderboard import Entry, home, leaderboard_page
from drawtune.smk import setup

COUNTS = ("train", "val", "test")

if __name__ == "__main__":
    setup(snakemake)
    p, inp, out = snakemake.params, snakemake.input, snakemake.output
    telemetry = {e: load_jsonl(f) for e, f in zip(p.experiments, inp.telemetry, strict=True)}
    counts = {}
    if inp.split_summary:
        counts["detect"] = read_json(inp.split_summary)
    for d, f in zip(p.classify_datasets, inp.classify_splits, strict=True):
        counts[d] = read_json(f)
    files = {
        **dict(zip(p.detect_models, inp.metrics, strict=True)),
        **dict(zip(p.classify_models, inp.classify, strict=True)),
    }
    entries = {}
    for m, f in files.items():
        info = p.info[m]
        data = counts["detect"] if info["task"] == "detect" else counts[info["datasets"][0]]
        entries[m] = Entry(
            name=m,
            metrics=read_json(f),
            info=info,
            telemetry=telemetry.get(m, []),
            counts={k: data[k] for k in COUNTS},
        )
    price, source = p.price
    Path(out.page).write_text(leaderboard_page(entries, p.note, price, source))
    Path(out.home).write_text(home(entries, p.note, price, source))
