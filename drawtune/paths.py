"""Where things are: the workflow's tree of results and resources, and the workflow's own files
that the library reads. The one home of this grammar: ``rules/*.smk`` declare their outputs
with these templates (``{wildcard}`` fields filled by Snakemake), and serve and the command line
find the workflow's outputs with the functions below. The Snakefile's header draws the tree.
"""

from __future__ import annotations

from pathlib import Path

# The workflow: a clone of the repository, whose package this is.
WORKFLOW = Path(__file__).resolve().parent.parent
SCHEMA = WORKFLOW / "config" / "schema.yaml"  # what config/config.yaml may hold
THROUGHPUT = WORKFLOW / "bench" / "throughput.json"  # the measured reference for estimates

CONFIG = "config/config.yaml"  # the config a run reads, relative to the working directory

TREES = ("resources/", "results/")  # the folders the workflow writes into

# resources/: generated inputs, built models and stores that outlive one run
SYNTH = "resources/synth/{dataset}"
SYNTH_CLASSIFY = "resources/synth-classify/{dataset}"
TINY_MODEL = "resources/models/tiny-{family}"
NORMALISED = "resources/normalised/{dataset}"  # converted pages the records point to
IMAGE_CACHE = "resources/cache/{dataset}"  # image facts by file identity: reruns decode less
# the split's memory: each drawing's split when it was first assigned, so that a near-duplicate
# added later follows its group and nothing moves (not a rule output: a failed split keeps it)
SPLIT_LEDGER = "resources/splits/ledger.json"
CLASSIFY_LEDGER = "resources/splits/classify/{dataset}/ledger.json"

# results/<stage>/...
VALIDATED = "results/validated/{dataset}"
SPLITS = "results/splits"
CLASSIFY_SPLITS = "results/splits/classify/{dataset}"
SWIFT_ROOT = "results/swift"
SWIFT = SWIFT_ROOT + "/{model}"
SWIFT_DATA = SWIFT + "/{split}.jsonl"
SWIFT_MANIFEST = SWIFT + "/{split}.manifest.jsonl"
SWIFT_TILES = SWIFT + "/{split}.tiles"  # a tiled model's view images (empty for the others)
TRAIN = "results/train/{experiment}"
ADAPTER = TRAIN + "/adapter"
CHECKPOINTS = TRAIN + "/run"  # ms-swift's run: what an interrupted training resumes from
# a model's box score and threshold, chosen on the validation split (rule calibrate_scores);
# beside the adapter, and for an untrained model (base, tuner none) alone in its folder
CONFIDENCE = "results/train/{model}/confidence.json"
MERGED = "results/merged/{experiment}"
PREDICTIONS = "results/predictions/{model}"
SHEET_PREDICTIONS = PREDICTIONS + "/{split}.sheets.jsonl"  # a tiled model's, merged on sheets
METRICS = "results/metrics/{model}"
REPORT = "results/report"
ADHOC = "results/adhoc"  # `drawtune predict`: a few drawings outside the workflow


def tiny_model(family: str) -> str:
    """The random demo model of a family (rule build_tiny_model)."""
    return TINY_MODEL.format(family=family)


def adapter(experiment: str, root=".") -> Path:
    """An experiment's trained adapter (rule train_adapter)."""
    return Path(root) / ADAPTER.format(experiment=experiment)


def checkpoints(experiment: str, root=".") -> Path:
    """An experiment's checkpoint folder: ms-swift's run, kept so that an interrupted run
    resumes (rule train_adapter; not an output, Snakemake would delete it on failure)."""
    return Path(root) / CHECKPOINTS.format(experiment=experiment)


def confidence(model: str, root=".") -> Path:
    """A model's box score and threshold (rule calibrate_scores)."""
    return Path(root) / CONFIDENCE.format(model=model)


def merged(experiment: str, root=".") -> Path:
    """An experiment's merged model (rule merge_adapter)."""
    return Path(root) / MERGED.format(experiment=experiment)


def swift_data(model: str, split: str, folder=SWIFT_ROOT) -> Path:
    """A model's converted split as ms-swift reads it (rule convert_annotations)."""
    relative = SWIFT_DATA.removeprefix(SWIFT_ROOT + "/")
    return Path(folder) / relative.format(model=model, split=split)


def swift_manifest(model: str, split: str, folder=SWIFT_ROOT) -> Path:
    """The image sizes of a converted split (rule convert_annotations)."""
    relative = SWIFT_MANIFEST.removeprefix(SWIFT_ROOT + "/")
    return Path(folder) / relative.format(model=model, split=split)
