"""Where the report's numbers come from: every input record accounted for, the config, package
versions and data hashes."""

from __future__ import annotations

import hashlib
from importlib import metadata
from pathlib import Path

from .. import paths
from .html import Col, Raw, esc, fmt, page, table

PACKAGES = (
    "drawtune",
    "ms-swift",
    "torch",
    "torchvision",
    "transformers",
    "peft",
    "snakemake",
    "pycocotools",
    "qwen-vl-utils",
    "pillow",
)


def _sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def accounting(
    summaries: list[dict], split_summary: dict | None, classify_splits: dict | None = None
) -> str:
    """Every input record accounted for: per dataset read = converted + rejected, then the
    split (duplicates rejected there), as HTML."""
    cols = [
        Col("dataset"),
        Col("read", "records", True),
        Col("converted", "records", True),
        Col("rejected", "records", True),
    ]
    rows = [
        [str(s["dataset"]), fmt(s["read"]), fmt(s["converted"]), fmt(s["rejected"])]
        for s in summaries
    ]
    total = ["all", *(fmt(sum(s[k] for s in summaries)) for k in ("read", "converted", "rejected"))]
    text = "<h2>Records</h2>" + table(cols, rows, foot=total)
    splits = {"detection": split_summary} if split_summary else {}
    splits.update({f"classification {k}": v for k, v in sorted((classify_splits or {}).items())})
    for name, sp in splits.items():
        text += (
            f"<p>{esc(name)} split: train {sp['train']}, val {sp['val']}, "
            f"test {sp['test']}; {sp['duplicates_rejected']} repeated images rejected.</p>"
        )
    where = esc(paths.VALIDATED.format(dataset="<dataset>"))
    return text + (
        f"<p>Rejected records with their reasons: <code>{where}/rejects.jsonl</code>"
        " and the rejects.jsonl beside each split (counted by reason on the Data page).</p>"
    )


def provenance_html(config_text: str, data_files: list, records_html: str = "") -> str:
    """Config used, package versions and data hashes, as one HTML page."""
    versions = []
    for p in PACKAGES:
        try:
            versions.append([p, metadata.version(p)])
        except metadata.PackageNotFoundError:
            versions.append([p, "not installed"])
    data = [[str(f), Raw(f"<code>{_sha(f)}</code>")] for f in data_files]
    body = (
        records_html
        + "<h2>Configuration</h2><pre style='max-height:none'>"
        + esc(config_text)
        + "</pre><h2>Package versions</h2>"
        + table([Col("package"), Col("version")], versions)
        + "<h2>Data</h2>"
        + table([Col("file"), Col("sha256")], data)
    )
    lead = "The configuration as the run used it, package versions and the data's hashes."
    return page("Provenance", body, lead)


def provenance(config_text: str, data_files: list, out, records_html: str = "") -> None:
    Path(out).write_text(provenance_html(config_text, data_files, records_html))
