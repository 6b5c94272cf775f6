"""The report (rules of rules/report.smk): the leaderboard that opens it, a page per model,
the error gallery, the data page and provenance, all in one look (``report.css``).

Modules: ``html`` (stylesheet, tables, embedded pictures), ``charts``, ``leaderboard``,
``compare``, ``gallery``, ``sections`` (what a section is and gets: the hook for new ones),
``model_sections``, ``data_sections``, ``pages`` (the section lists), ``provenance``.
"""

# The categories of Snakemake's report, which sorts them by name: the numbers keep this order
# (rules/report.smk and rules/evaluate.smk file their results under them).
CATEGORIES = {
    "leaderboard": "1 Leaderboard",
    "models": "2 Models",
    "gallery": "3 Error gallery",
    "data": "4 Data",
    "provenance": "5 Provenance",
}
