"""The report's pages that are built from sections: one page per model and the data page.

The lists below are the hook for new sections: a function of a
:class:`~drawtune.report.sections.ModelContext` (or
:class:`~drawtune.report.sections.DataContext`) that returns a
:class:`~drawtune.report.sections.Section` or None, added here in the place it should appear.
"""

from __future__ import annotations

from . import data_sections, model_sections
from .html import esc, page
from .sections import DataContext, ModelContext, Section

# A model's page, top to bottom.
MODEL_SECTIONS = [
    model_sections.overview,
    model_sections.per_class_ap,
    model_sections.per_class_prf,
    model_sections.confusion,
    model_sections.training,
    model_sections.telemetry,
]

# The data page, top to bottom.
DATA_SECTIONS = [
    data_sections.detection_splits,
    data_sections.detection_classes,
    data_sections.box_sizes,
    data_sections.classification_data,
    data_sections.rejects,
]


def render(title: str, lead: str, sections: list[Section]) -> str:
    """A page of sections with links to each at the top."""
    nav = "".join(f"<a href='#{esc(s.id)}'>{esc(s.title)}</a>" for s in sections)
    body = f"<nav class='sections'>{nav}</nav>" if len(sections) > 1 else ""
    body += "".join(
        f"<section id='{esc(s.id)}'><h2>{esc(s.title)}</h2>{s.html}</section>" for s in sections
    )
    return page(title, body, lead)


def model_page(ctx: ModelContext, sections=None) -> str:
    built = [s for s in (f(ctx) for f in sections or MODEL_SECTIONS) if s is not None]
    kind = "detection" if ctx.task == "detect" else "classification"
    state = "fine-tuned" if ctx.trained else "untrained"
    return render(f"Model {ctx.name}", f"A {state} {kind} model on its test split.", built)


def data_page(ctx: DataContext, sections=None) -> str:
    built = [s for s in (f(ctx) for f in sections or DATA_SECTIONS) if s is not None]
    lead = "What the models learn from and are tested on, and what was left out and why."
    return render("Data", lead, built)
