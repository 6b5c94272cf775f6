"""Snakemake adapter: read and check one dataset (drawtune.data.validate)."""

from drawtune.data.validate import dataset_rules, fingerprint_store, validate_dataset
from drawtune.smk import resize_spec, setup

if __name__ == "__main__":
    setup(snakemake)
    p, out = snakemake.params, snakemake.output
    ds = dict(p.dataset, annotations=snakemake.input.annotations)
    store = fingerprint_store(out.cache) if p.fingerprints else None
    rules = dataset_rules(
        p.dataset,
        p.classes,
        p.validation,
        normalised_dir=out.normalised,
        cache_dir=out.cache,
        workers=snakemake.threads,
        fingerprints=store,
    )
    validate_dataset(
        ds,
        rules,
        resize_spec(p) if p.resize else None,  # only a swift dataset's boxes depend on it
        p.validation["max_rejected_fraction"],
        out.records,
        out.rejects,
        out.summary,
        name=snakemake.wildcards.dataset,
        rejects_copy=snakemake.log.rejects,  # a log: kept when the job fails
        fingerprints=store,
    )
