"""What a report section is and what it is given: the hook the per-model pages and the data page
are built from (the lists of sections are in :mod:`drawtune.report.pages`).

A section is a function of a context that returns a :class:`Section`, or None when it has
nothing to say for this model or data (a detection chart for a classification model, training
curves of an untrained model). To add one: write the function in a module of its own
(``drawtune/report/<topic>.py``), add it to ``MODEL_SECTIONS`` or ``DATA_SECTIONS`` in
:mod:`drawtune.report.pages`, and when it needs a file the rule does not read yet, add that file
as a named input of the rule (``report_model`` or ``report_data`` in ``rules/report.smk``): it
arrives in ``context.inputs`` under its name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property

from ..eval.confusion import Matching, match_detections


@dataclass
class Section:
    title: str
    html: str  # the section's body: tables from html.table, pictures from html.figure
    id: str = ""  # its anchor; default from the title

    def __post_init__(self):
        if not self.id:
            self.id = re.sub(r"[^a-z0-9]+", "-", self.title.lower()).strip("-")


@dataclass
class ModelContext:
    """One model (an experiment or the untrained base) on its test split."""

    name: str
    task: str  # "detect" or "classify"
    metrics: dict  # results/metrics/<model>/test.json
    details: list[dict]  # results/metrics/<model>/test.details.jsonl, one row per drawing
    info: dict  # what the model is: task, tuner, base, family, epochs, learning_rate, ...
    truth: dict | None = None  # detection: the test split's COCO truth
    counts: dict = field(default_factory=dict)  # drawings per split of its data
    logging: list[dict] = field(default_factory=list)  # ms-swift's logging.jsonl (trained)
    telemetry: list[dict] = field(default_factory=list)  # telemetry.jsonl (trained)
    inputs: dict = field(default_factory=dict)  # every named input of the rule: name -> path
    params: dict = field(default_factory=dict)  # every param of the rule

    @property
    def trained(self) -> bool:
        return self.info.get("tuner", "none") != "none"

    @cached_property
    def matching(self) -> Matching | None:
        """Detection: every test drawing's boxes matched at IoU 0.5 (computed once)."""
        if self.task != "detect" or self.truth is None:
            return None
        return match_detections(self.truth, self.details)


@dataclass
class DataContext:
    """The data every model learns from and is tested on, after validation and the split."""

    classes: list[str]  # the detection classes
    splits: dict[str, list[dict]]  # detection: split -> records (boxes in pixels)
    classify: dict[str, dict[str, list[dict]]]  # classification dataset -> split -> records
    summaries: list[dict]  # per dataset: read, converted, rejected
    rejects: dict[str, list[dict]]  # per dataset: validation rejects (file, record, field, reason)
    split_rejects: list[dict]  # repeated images rejected by the splits
    records: dict[str, list[dict]] = field(default_factory=dict)  # dataset -> validated records
    inputs: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)
