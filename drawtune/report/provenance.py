"""Where the report's numbers come from: every input record accounted for, the config, package
versions and data hashes."""

from __future__ import annotations

import hashlib
import html
from importlib import metadata
from pathlib import Path

from .. import paths

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
    split (duplicates rejected there), as an HTML table."""
    rows = "".join(
        f"<tr><td>{html.escape(str(s['dataset']))}</td><td>{s['read']}</td>"
        f"<td>{s['converted']}</td><td>{s['rejected']}</td></tr>"
        for s in summaries
    )
    total = [sum(s[k] for s in summaries) for k in ("read", "converted", "rejected")]
    rows += f"<tr><th>all</th><th>{total[0]}</th><th>{total[1]}</th><th>{total[2]}</th></tr>"
    text = (
        "<h3>Records</h3><table border='1'><tr><th>dataset</th><th>read</th><th>converted</th>"
        "<th>rejected</th></tr>" + rows + "</table>"
    )
    splits = {"detection": split_summary} if split_summary else {}
    splits.update({f"classification {k}": v for k, v in sorted((classify_splits or {}).items())})
    for name, sp in splits.items():
        text += (
            f"<p>{html.escape(name)} split: train {sp['train']}, val {sp['val']}, "
            f"test {sp['test']}; {sp['duplicates_rejected']} repeated images rejected.</p>"
        )
    where = html.escape(paths.VALIDATED.format(dataset="<dataset>"))
    return text + (
        f"<p>Rejected records with their reasons: {where}/rejects.jsonl"
        " and the rejects.jsonl beside each split.</p>"
    )


def provenance(config_text: str, data_files: list, out, records_html: str = "") -> None:
    """Config used, package versions and data hashes, as one HTML page."""
    versions = []
    for p in PACKAGES:
        try:
            versions.append((p, metadata.version(p)))
        except metadata.PackageNotFoundError:
            versions.append((p, "not installed"))
    vrows = "".join(f"<tr><td>{p}</td><td>{v}</td></tr>" for p, v in versions)
    drows = "".join(
        f"<tr><td>{html.escape(str(f))}</td><td><code>{_sha(f)}</code></td></tr>"
        for f in data_files
    )
    Path(out).write_text(
        "<html><body>"
        + records_html
        + "<h3>Configuration</h3><pre>"
        + html.escape(config_text)
        + "</pre>"
        "<h3>Package versions</h3><table border='1'>" + vrows + "</table>"
        "<h3>Data (sha256)</h3><table border='1'>" + drows + "</table></body></html>\n"
    )
