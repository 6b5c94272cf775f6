"""Snakemake adapter: read and check one dataset (drawtune.stages.validate_dataset)."""

from pathlib import Path

from drawtune.records import Rules
from drawtune.smk import resize_spec, setup
from drawtune.stages import validate_dataset

if __name__ == "__main__":
    setup(snakemake)
    p = snakemake.params
    ds = dict(p.dataset, annotations=snakemake.input.annotations)
    rules = Rules(
        classes=tuple(p.classes),
        aliases=p.dataset.get("aliases") or {},
        clip_tolerance=p.validation["clip_tolerance"],
        max_image_pixels=p.validation["max_image_pixels"],
        drop=tuple(p.dataset.get("drop") or ()),
        pdf_dpi=p.validation["pdf_dpi"],
        box_units=p.dataset.get("box_units") or "pixels",
        # content-addressed stores outside the rule's outputs, so reruns reuse them
        normalised_dir=Path("resources/normalised"),
        cache_dir=Path("resources/cache/images"),
        workers=snakemake.threads,
    )
    validate_dataset(
        ds,
        rules,
        resize_spec(p),
        p.validation["max_rejected_fraction"],
        snakemake.output.records,
        snakemake.output.rejects,
        snakemake.output.summary,
        name=snakemake.wildcards.dataset,
    )
