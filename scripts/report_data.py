"""Snakemake adapter: the data page (drawtune.report.pages, drawtune.report.data_sections)."""

from pathlib import Path

from drawtune.data.split import SPLITS
from drawtune.jsonio import load_jsonl, read_json
from drawtune.report.pages import data_page
from drawtune.report.sections import DataContext
from drawtune.smk import setup


def files(named) -> list[str]:
    """A named input as a list (one file, or none when the rule gives ``[]``)."""
    return [named] if isinstance(named, str) else list(named)


if __name__ == "__main__":
    setup(snakemake)
    p, inp, out = snakemake.params, snakemake.input, snakemake.output
    n = len(SPLITS)
    classify_files = list(inp.classify_splits)
    ctx = DataContext(
        classes=list(p.classes),
        splits={s: load_jsonl(f) for s, f in zip(SPLITS, inp.splits, strict=True)},
        classify={
            d: dict(zip(SPLITS, map(load_jsonl, classify_files[k * n : (k + 1) * n]), strict=True))
            for k, d in enumerate(p.classify_datasets)
        },
        summaries=[read_json(f) for f in inp.summaries],
        rejects={d: load_jsonl(f) for d, f in zip(p.datasets, inp.rejects, strict=True)},
        split_rejects=[
            r
            for f in [*files(inp.split_rejects), *files(inp.classify_rejects)]
            for r in load_jsonl(f)
        ],
        records={d: load_jsonl(f) for d, f in zip(p.datasets, inp.records, strict=True)},
        inputs=dict(inp.items()),
        params=dict(p.items()),
    )
    Path(out.page).write_text(data_page(ctx))
