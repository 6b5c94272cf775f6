"""Issue 19 through the workflow (validation, split and the report's leakage page only): the
near-duplicate archive of tests/support/near_duplicates.py kept in one split, a revision added
later following its group from the ledger, and ``on_leak: fail``."""

from __future__ import annotations

import hashlib
import json
import shutil

import near_duplicates as nd
import pytest
import yaml
from conftest import copy_workflow, planned_jobs, snakemake, tiny_config

from drawtune.data.assign import SPLITS, split_of
from drawtune.data.leakage import name_of
from drawtune.jsonio import load_jsonl

pytestmark = pytest.mark.workflow

TARGETS = ("results/splits/summary.json", "results/report/leakage.html")
LEDGER = "resources/splits/ledger.json"


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_config(wd, salt: str, leakage: dict | None = None) -> None:
    cfg = tiny_config("data/archive/annotations.json")
    cfg["datasets"] = {"archive": cfg["datasets"].pop("drawings")}
    cfg["split"] = {"val": 0.2, "test": 0.3, "salt": salt}
    if leakage:
        cfg["leakage"] = leakage
    (wd / "config" / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))


def _where(wd) -> dict:
    return {name_of(r): s for s in SPLITS for r in load_jsonl(wd / f"results/splits/{s}.jsonl")}


@pytest.fixture(scope="module")
def leak_workflow(tmp_path_factory):
    wd = copy_workflow(tmp_path_factory.mktemp("leakage") / "drawtune")
    names = nd.write_archive(wd / "data" / "archive")
    images = wd / "data" / "archive" / "images"
    # a salt that would scatter sheet A's copies over all three splits, were they not grouped
    for k in range(500):
        salt = f"salt{k}"
        if len({split_of(_sha(images / n), 0.2, 0.3, salt) for n in names["a"]}) == 3:
            break
    _write_config(wd, salt)
    snakemake(wd, *TARGETS)
    return wd, names, salt


def _copy(leak_workflow, tmp_path):
    wd, names, salt = leak_workflow
    dest = tmp_path / "drawtune"
    shutil.copytree(wd, dest, symlinks=True)
    return dest, names, salt


def test_near_duplicates_share_a_split_and_the_report_has_a_leakage_page(leak_workflow):
    wd, names, _ = leak_workflow
    where = _where(wd)
    assert len({where[n] for n in names["a"]}) == 1
    assert len({where[n] for n in names["b"]}) == 1
    report = json.loads((wd / "results/splits/leakage.json").read_text())
    assert report["links"] == {"fingerprint": 7} and report["leaks"] == 0
    assert report["fingerprinted"] == report["drawings"] == 7 + len(names["others"])
    ledger = json.loads((wd / LEDGER).read_text())
    assert len(ledger["splits"]) == report["drawings"]
    page = (wd / "results/report/leakage.html").read_text()
    assert "Near-duplicates across splits" in page and "No near-duplicate pair" in page
    log = (wd / "logs/validate_annotations/archive.log").read_text()
    assert f"fingerprints computed: {report['drawings']} of {report['drawings']}" in log


def test_a_revision_added_later_follows_its_group_and_nothing_moves(leak_workflow, tmp_path):
    wd, names, salt = _copy(leak_workflow, tmp_path)
    before = _where(wd)
    group = before["a_revA.png"]
    images = wd / "data" / "archive" / "images"
    for rev in "CDEFGHJKLMNPQRSTUVWXYZ":  # one whose own hash would put it elsewhere
        path = nd.revision(1, rev, images / f"a_rev{rev}.png")
        if split_of(_sha(path), 0.2, 0.3, salt) != group:
            break
        path.unlink()
    nd.add_image(wd / "data" / "archive", path.name)
    jobs = planned_jobs(wd, *TARGETS)
    assert sorted(jobs) == ["report_leakage", "split_dataset", "validate_annotations"]
    snakemake(wd, *TARGETS)
    after = _where(wd)
    assert after[path.name] == group
    assert {n: after[n] for n in before} == before
    log = (wd / "logs/validate_annotations/archive.log").read_text()
    assert f"fingerprints computed: 1 of {len(after)}" in log


def test_on_leak_fail_stops_the_run_and_keeps_the_leakage_report(leak_workflow, tmp_path):
    wd, names, salt = _copy(leak_workflow, tmp_path)
    # an earlier split that saw no near-duplicates: sheet A's copies scattered
    (wd / LEDGER).unlink()
    _write_config(wd, salt, {"max_distance": 0})
    snakemake(wd, *TARGETS)
    before = _where(wd)
    assert len({before[n] for n in names["a"]}) == 3
    ledger = (wd / LEDGER).read_text()
    # now near-duplicates are found: nothing moves, the pairs are reported and the run fails
    _write_config(wd, salt, {"on_leak": "fail", "max_leaks": 1})
    proc = snakemake(wd, *TARGETS, check=False)
    assert proc.returncode != 0
    assert "near-duplicate pair(s) across splits, more than leakage.max_leaks 1" in proc.stderr
    kept = json.loads((wd / "logs/split_dataset/leakage.json").read_text())
    assert kept["leaks"] >= 3 and kept["per_split_pair"]["train-test"] >= 1
    assert not (wd / "results/splits/leakage.json").exists()  # outputs of a failed job go
    assert (wd / LEDGER).read_text() == ledger
    # warn (the default): the same split, and the report draws the pairs
    _write_config(wd, salt)
    snakemake(wd, *TARGETS)
    assert _where(wd) == before
    page = (wd / "results/report/leakage.html").read_text()
    assert page.count("<img src='data:image/png;base64,") == kept["leaks"]
    assert f"<b>{kept['leaks']} near-duplicate pair(s) cross splits</b>" in page
