"""Issue 19: near-duplicate drawings (re-saved, cropped, another revision stamp, a PDF page and
its PNG export) are fingerprinted in validation, kept in one split, followed by near-duplicates
added later, and what crosses splits is reported; a different sheet on the same template is not
grouped. Fixtures: tests/support/near_duplicates.py, built here."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from itertools import combinations

import imagehash
import near_duplicates as nd
import pytest
import yaml
from PIL import Image

from drawtune.config import completed, defaults
from drawtune.data import synth
from drawtune.data.assign import SPLITS, assign, split_of
from drawtune.data.leakage import (
    DEFAULT_MAX_DISTANCE,
    STORE_NAME,
    LeakSettings,
    Link,
    distance,
    find_links,
    fingerprint,
    name_of,
    prepare,
)
from drawtune.data.split import split_dataset, split_pool
from drawtune.data.validate import dataset_rules, fingerprint_store, validate_dataset
from drawtune.errors import StageError
from drawtune.jsonio import load_jsonl, read_json
from drawtune.paths import WORKFLOW
from drawtune.report.leakage import leakage_page

CLASSES = list(synth.CLASSES)
PATTERN = r"(?P<part>.+)_rev[A-Z]"


def validate(folder, work, name="archive"):
    """Validate the COCO dataset in ``folder`` with fingerprints, as the workflow does; returns
    (records file, summary file, the fingerprint store)."""
    ds = {"format": "coco", "annotations": str(folder / "annotations.json")}
    store = fingerprint_store(work / "cache" / name)
    rules = dataset_rules(
        ds,
        CLASSES,
        defaults("validation"),
        normalised_dir=work / "normalised" / name,
        cache_dir=work / "cache" / name,
        fingerprints=store,
    )
    out = work / "validated" / name
    out.mkdir(parents=True, exist_ok=True)
    validate_dataset(
        ds,
        rules,
        None,
        0.2,
        out / "records.jsonl",
        out / "rejects.jsonl",
        out / "summary.json",
        name=name,
        fingerprints=store,
    )
    return out / "records.jsonl", out / "summary.json", store


def split(work, validated, salt, leakage=None, tag="split", ledger=True):
    """split_dataset over ``validated`` [(records, summary)], the ledger in ``work``; returns
    ({file name: split}, leakage report, summary)."""
    out = work / tag
    files = {s: out / f"{s}.jsonl" for s in SPLITS}
    truth = {s: out / f"{s}.coco.json" for s in SPLITS}
    summary = split_dataset(
        [r for r, _ in validated],
        CLASSES,
        0.2,
        0.3,
        salt,
        files,
        truth,
        out / "rejects.jsonl",
        out / "summary.json",
        summaries=[s for _, s in validated],
        leakage=leakage,
        ledger=work / "ledger.json" if ledger else None,
        leakage_out=out / "leakage.json",
        leakage_copy=work / "logs" / f"{tag}.leakage.json",
    )
    where = {name_of(r): s for s in SPLITS for r in load_jsonl(files[s])}
    return where, read_json(out / "leakage.json"), summary


def solo_splits(records, salt):
    """Where each drawing would go on its own (its content hash), by file name."""
    return {name_of(r): split_of(r["sha256"], 0.2, 0.3, salt) for r in records}


def group_split(records, names, salt):
    shas = [r["sha256"] for r in records if name_of(r) in names]
    return split_of(min(shas), 0.2, 0.3, salt)


def find_salt(test):
    for k in range(500):
        if test(f"salt{k}"):
            return f"salt{k}"
    raise AssertionError("no salt found")  # pragma: no cover


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    root = tmp_path_factory.mktemp("archive")
    names = nd.write_archive(root / "data")
    records_file, summary_file, store = validate(root / "data", root / "work")
    return root, names, records_file, summary_file, store


@pytest.fixture
def fresh(archive, tmp_path):
    """A copy of the validated archive with its own ledger and data folder."""
    root, names, _, _, _ = archive
    shutil.copytree(root / "data", tmp_path / "data")
    records_file, summary_file, store = validate(tmp_path / "data", tmp_path)
    return tmp_path, names, records_file, summary_file, store


def test_near_duplicates_link_and_a_sheet_on_the_same_template_does_not(archive):
    _, names, records_file, _, _ = archive
    records = load_jsonl(records_file)
    by = {name_of(r): r for r in records}
    assert len(records) == 7 + len(names["others"])
    links = find_links(records, LeakSettings())
    linked = {frozenset((name_of(records[ln.i]), name_of(records[ln.j]))) for ln in links}
    want = {frozenset(p) for g in (names["a"], names["b"]) for p in combinations(g, 2)}
    assert linked == want
    assert all(ln.why == "fingerprint" and ln.distance <= DEFAULT_MAX_DISTANCE for ln in links)
    # the PDF page is read through pypdfium2 into a PNG; the record names its original file
    assert by["b_revA.pdf"]["original"].endswith("images/b_revA.pdf")
    assert by["b_revA.pdf"]["image"].endswith(".png")
    # the sheet on the same template (border, title block, parts table) is far from sheet A
    c = by[names["c"]]["fingerprint"]
    nearest = min(distance(c, r["fingerprint"]) for r in records if r is not by[names["c"]])
    assert nearest > 1.5 * DEFAULT_MAX_DISTANCE


def test_each_group_lands_in_one_split(fresh):
    work, names, records_file, summary_file, _ = fresh
    records = load_jsonl(records_file)

    def scattered(salt):  # on their own, the members of each group would be split apart
        solo = solo_splits(records, salt)
        return all(len({solo[n] for n in names[g]}) > 1 for g in ("a", "b"))

    salt = find_salt(scattered)
    where, report, summary = split(work, [(records_file, summary_file)], salt)
    solo = solo_splits(records, salt)
    for g in ("a", "b"):
        assert {where[n] for n in names[g]} == {group_split(records, names[g], salt)}
    for n in [names["c"], *names["others"]]:
        assert where[n] == solo[n]
    assert report["leaks"] == 0 and report["pairs"] == []
    assert report["links"] == {"fingerprint": 7}
    assert summary["near_duplicate_leaks"] == 0 and summary["held_out"] == 0
    ledger = read_json(work / "ledger.json")
    assert len(ledger["splits"]) == len(records)


def test_near_duplicate_added_later_follows_its_group_and_nothing_moves(fresh):
    work, names, records_file, summary_file, store = fresh
    records = load_jsonl(records_file)
    salt = find_salt(lambda s: len({solo_splits(records, s)[n] for n in names["a"]}) > 1)
    before, _, _ = split(work, [(records_file, summary_file)], salt)
    group = before["a_revA.png"]
    # a revision whose own content hash would put it elsewhere
    for rev in "CDEFGHJKLMNPQRSTUVWXYZ":
        path = nd.revision(1, rev, work / "data" / "images" / f"a_rev{rev}.png")
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        if split_of(sha, 0.2, 0.3, salt) != group:
            break
        path.unlink()
    else:  # pragma: no cover
        raise AssertionError("no revision hashes elsewhere")
    nd.add_image(work / "data", path.name)
    records_file, summary_file, store = validate(work / "data", work)
    assert store.computed == 1  # only the new drawing was fingerprinted
    after, report, _ = split(work, [(records_file, summary_file)], salt)
    assert after[path.name] == group
    assert {n: after[n] for n in before} == before
    assert report["bridges"] == [] and report["leaks"] == 0


def test_bridging_newcomer_is_reported_with_both_names_and_moves_nothing(fresh):
    work, names, records_file, summary_file, _ = fresh
    records = load_jsonl(records_file)
    leakage = {"name_pattern": PATTERN}
    salt = find_salt(
        lambda s: group_split(records, names["a"], s) != group_split(records, names["b"], s)
    )
    before, _, _ = split(work, [(records_file, summary_file)], salt, leakage)
    split_a, split_b = before["a_revA.png"], before["b_revA.pdf"]
    assert split_a != split_b and before["b_revA_export.png"] == split_b
    # a copy of sheet A named as a revision of B: its pixels link A, its name links B
    a = work / "data" / "images" / "a_revA.png"
    with Image.open(a) as im:
        im.convert("RGB").save(work / "data" / "images" / "b_revC.jpg", quality=80)
    nd.add_image(work / "data", "b_revC.jpg")
    ledger_before = read_json(work / "ledger.json")
    records_file, summary_file, _ = validate(work / "data", work)
    held = dict(leakage, on_bridge="hold_out")
    after, report, summary = split(work, [(records_file, summary_file)], salt, held, tag="held")
    assert {n: after[n] for n in before} == before  # nothing moved
    assert "b_revC.jpg" not in after and summary["held_out"] == 1
    (bridge,) = report["bridges"]
    assert bridge["newcomer"]["name"] == "b_revC.jpg" and bridge["placed"] == "held out"
    linked = {ln["split"]: ln["name"] for ln in bridge["links"]}
    assert set(linked) == {split_a, split_b}
    assert linked[split_a] in names["a"] and linked[split_b] in names["b"]
    assert report["held_out"][0]["name"] == "b_revC.jpg"
    assert read_json(work / "ledger.json") == ledger_before  # a held-out drawing is not recorded
    # placed: with the nearest drawing (a file-name key counts as distance 0), still nothing moved
    after, report, _ = split(work, [(records_file, summary_file)], salt, leakage, tag="placed")
    assert {n: after[n] for n in before} == before
    assert after["b_revC.jpg"] == split_b and report["bridges"][0]["placed"] == split_b
    # the leaks it makes visible: the copy of A in B's split against A's drawings
    assert report["leaks"] >= 1
    assert all({p["a"]["split"], p["b"]["split"]} == {split_a, split_b} for p in report["pairs"])


def test_leaks_left_by_earlier_splits_are_reported_and_on_leak_fail_stops(fresh):
    work, names, records_file, summary_file, _ = fresh
    records = load_jsonl(records_file)
    salt = find_salt(lambda s: len({solo_splits(records, s)[n] for n in names["a"]}) == 3)
    # an earlier split that did not see near-duplicates (as before issue 19): A is scattered
    before, _, _ = split(work, [(records_file, summary_file)], salt, {"max_distance": 0})
    assert len({before[n] for n in names["a"]}) == 3
    ledger = read_json(work / "ledger.json")
    after, report, _ = split(work, [(records_file, summary_file)], salt, tag="again")
    assert after == before  # nothing moves
    n_a = sum(1 for x, y in combinations(names["a"], 2) if before[x] != before[y])
    n_b = int(before["b_revA.pdf"] != before["b_revA_export.png"])
    assert report["leaks"] == n_a + n_b == sum(report["per_split_pair"].values())
    for p in report["pairs"]:
        assert p["why"] == "fingerprint" and 0 <= p["distance"] <= DEFAULT_MAX_DISTANCE
        assert p["a"]["split"] != p["b"]["split"]
        assert p["splits"] == f"{p['a']['split']}-{p['b']['split']}"
    strict = {"on_leak": "fail", "max_leaks": report["leaks"] - 1}
    with pytest.raises(StageError, match="near-duplicate pair"):
        split(work, [(records_file, summary_file)], salt, strict, tag="strict")
    assert read_json(work / "logs" / "strict.leakage.json")["leaks"] == report["leaks"]
    assert read_json(work / "ledger.json") == ledger
    allowed = {"on_leak": "fail", "max_leaks": report["leaks"]}
    split(work, [(records_file, summary_file)], salt, allowed, tag="allowed")


def test_the_same_drawings_in_two_datasets_are_checked_together(fresh):
    work, names, _, _, _ = fresh
    # dataset "first": sheet A and the others; dataset "second": A's JPEG and revision B
    first, second = work / "first", work / "second"
    for folder, keep in (
        (first, ["a_revA.png", *names["others"]]),
        (second, ["a_revA.jpg", "a_revB.png", names["c"]]),
    ):
        (folder / "images").mkdir(parents=True)
        for n in keep:
            shutil.copy(work / "data" / "images" / n, folder / "images" / n)
        nd.write_coco(folder, [(n, None, []) for n in keep])
    v1 = validate(first, work, "first")[:2]
    v2 = validate(second, work, "second")[:2]
    where, report, _ = split(work, [v1, v2], "drawtune")
    assert len({where[n] for n in ("a_revA.png", "a_revA.jpg", "a_revB.png")}) == 1
    assert report["across_datasets"] == {"first / second": 2}


def test_fingerprints_are_cached_by_image_content(fresh):
    work, names, records_file, _, store = fresh
    assert store.computed == len(load_jsonl(records_file))
    first = {r["sha256"]: r["fingerprint"] for r in load_jsonl(records_file)}
    _, _, again = validate(work / "data", work)
    assert again.computed == 0
    # the image facts gone (every image decoded again): the fingerprints still come by content
    cache = work / "cache" / "archive"
    kept = json.loads((cache / STORE_NAME).read_text())
    shutil.rmtree(cache)
    cache.mkdir()
    (cache / STORE_NAME).write_text(json.dumps(kept))
    _, _, decoded = validate(work / "data", work)
    assert decoded.computed == 0
    # the fingerprints gone, the facts cached: computed again from the files, the same values
    os.remove(work / "cache" / "archive" / STORE_NAME)
    records_file, _, rebuilt = validate(work / "data", work)
    assert rebuilt.computed == len(first)
    assert {r["sha256"]: r["fingerprint"] for r in load_jsonl(records_file)} == first


def test_a_bridge_through_newcomers_only_and_joining_one_group():
    """The rules on hand-made fingerprints, near-duplicates within 105 bits: A (ledger: train)
    and B (ledger: test) are 200 bits apart; X is 100 from each (a bridge); Y is 10 from A and
    110 from X (joins A, no bridge); Z is new and alone (its own hash)."""

    def fp(bits):
        return f"{sum(1 << b for b in bits):0256x}"

    def rec(name, bits):
        return {"source": "f", "record": name, "image": f"{name}.png", "sha256": name * 8,
                "group": None, "fingerprint": fp(bits)}  # fmt: skip

    records = [
        rec("a", []),
        rec("b", range(200)),
        rec("x", range(100)),
        rec("y", range(1000, 1010)),
        rec("z", range(500, 1000)),
    ]
    links = find_links(records, LeakSettings(max_distance=105))
    assert {(records[ln.i]["record"], records[ln.j]["record"]) for ln in links} == {
        ("a", "x"),
        ("b", "x"),
        ("a", "y"),
    }
    ledger = {"a" * 8: "train", "b" * 8: "test"}
    res = assign(records, links, 0.2, 0.3, "drawtune", ledger, "place")
    assert res.where[:2] == ["train", "test"]
    assert res.where[3] == "train"  # y joins A's group: no bridge
    assert res.where[4] == split_of("z" * 8, 0.2, 0.3, "drawtune")
    (bridge,) = res.bridges
    assert bridge["newcomer"]["record"] == "x"
    assert [(ln["split"], ln["record"], ln["distance"]) for ln in bridge["links"]] == [
        ("train", "a", 100),
        ("test", "b", 100),
    ]
    assert res.where[2] == "train"  # equally near: the earlier split of train, val, test
    held = assign(records, links, 0.2, 0.3, "drawtune", ledger, "hold_out")
    assert held.where[2] is None and held.where[3] == "train" and len(held.held_out) == 1


def test_a_new_group_splits_by_its_group_value_else_its_smallest_hash():
    records = [
        {"source": "f", "record": "1", "image": "1.png", "sha256": "b" * 64, "group": None},
        {"source": "f", "record": "2", "image": "2.png", "sha256": "a" * 64, "group": None},
        {"source": "f", "record": "3", "image": "3.png", "sha256": "c" * 64, "group": "set-7"},
        {"source": "f", "record": "4", "image": "4.png", "sha256": "d" * 64, "group": None},
    ]
    links = [Link(0, 1, "name", key="x"), Link(2, 3, "fingerprint", distance=3)]
    res = assign(records, links, 0.2, 0.3, "s")
    assert res.where[:2] == [split_of("a" * 64, 0.2, 0.3, "s")] * 2
    assert res.where[2:] == [split_of("set-7", 0.2, 0.3, "s")] * 2


def test_a_train_only_dataset_goes_to_train_and_moves_nothing_else():
    """Datasets ``real`` and ``synth`` (holdout: false): synth's drawings go to train; real's
    are split as without synth; a synth drawing linked to a real one in val or test is held out,
    one linked to a real train drawing joins train."""

    def rec(name):
        return {"source": "f", "record": name, "image": f"{name}.png", "sha256": name * 64,
                "group": None}  # fmt: skip

    real = [rec(c) for c in "abcdefgh"]
    synth = [rec(c) for c in "pqrstuvw"]
    alone = assign(real, [], 0.25, 0.25, "s")
    where = alone.where
    assert {"train", "val", "test"} <= set(where)  # this salt puts real drawings in all three
    held_at = where.index("test")
    train_at = where.index("train")
    records = real + synth
    names = ["real"] * len(real) + ["synth"] * len(synth)
    # synth's first drawing is a near-duplicate of a real test drawing, its second of a real
    # train drawing
    links = [
        Link(held_at, len(real), "fingerprint", distance=3),
        Link(train_at, len(real) + 1, "fingerprint", distance=3),
    ]
    res = assign(records, links, 0.25, 0.25, "s", datasets=names, train_only={"synth"})
    assert res.where[: len(real)] == where
    assert res.where[len(real)] is None
    assert res.where[len(real) + 1 :] == ["train"] * (len(synth) - 1)
    (held,) = res.held_out
    assert held["record"] == "p" and held["dataset"] == "synth"
    assert "train-only" in held["reason"] and "test" in held["reason"]
    # without the flag the same drawings are split like any other
    plain = assign(records, links, 0.25, 0.25, "s", datasets=names)
    assert plain.where[len(real)] == "test" and set(plain.where[len(real) :]) != {"train"}
    # a drawing a ledger once put in test goes to train once its dataset is train-only
    ledger = {synth[-1]["sha256"]: "test"}
    again = assign(records, links, 0.25, 0.25, "s", ledger, datasets=names, train_only={"synth"})
    assert again.where[-1] == "train"


def test_name_pattern_joins_revisions_by_file_name():
    recs = [
        {"source": "f", "record": str(k), "image": f"img/{n}", "sha256": f"{k:064x}", "group": None}
        for k, n in enumerate(["PUMP-100_revA.png", "PUMP-100_revB.png", "VALVE_revA.png"])
    ]
    recs.append(dict(recs[0], record="3", sha256="f" * 64, image="x.png",
                     original="img/PUMP-100_revC.pdf#2"))  # fmt: skip
    links = find_links(recs, LeakSettings(name_pattern=PATTERN))
    assert {(ln.i, ln.j, ln.key) for ln in links} == {(0, 1, "PUMP-100"), (0, 3, "PUMP-100")}
    pool = split_pool(recs, 0.2, 0.3, "s", LeakSettings(name_pattern=PATTERN))
    where = {r["record"]: s for s, rs in pool.splits.items() for r in rs}
    assert where["0"] == where["1"] == where["3"]


def test_a_name_pattern_that_is_no_regex_stops_at_startup():
    cfg = yaml.safe_load((WORKFLOW / "config" / "config.yaml").read_text())
    cfg["leakage"] = {"name_pattern": "(?P<part>.+_rev["}
    with pytest.raises(ValueError, match="leakage.name_pattern: .* not a valid regular"):
        completed(cfg)


def test_leakage_page_shows_each_pair_side_by_side(fresh):
    work, names, records_file, summary_file, _ = fresh
    records = load_jsonl(records_file)
    salt = find_salt(lambda s: len({solo_splits(records, s)[n] for n in names["a"]}) == 3)
    split(work, [(records_file, summary_file)], salt, {"max_distance": 0})
    _, report, _ = split(work, [(records_file, summary_file)], salt, tag="again")
    page = work / "leakage.html"
    leakage_page({"detection": work / "again" / "leakage.json"}, page, pictures=2)
    text = page.read_text()
    assert text.count("<img src='data:image/png;base64,") == 2
    assert f"<b>{report['leaks']} near-duplicate pair(s) cross splits</b>" in text
    for p in report["pairs"]:
        assert p["a"]["name"] in text and p["b"]["name"] in text
        assert f"<td class='num'>{p['distance']}</td>" in text
    assert "pictures of the first 2 (leakage.pictures)" in text


def test_fingerprint_is_imagehash_phash_of_the_trimmed_sheet(archive):
    root, *_ = archive
    with Image.open(root / "data" / "images" / "a_revA.png") as im:
        im.load()
    assert fingerprint(im) == str(imagehash.phash(prepare(im), hash_size=32))
    assert len(fingerprint(im)) == 256  # 1024 bits in hex
    # trimmed to the ink: a white margin added around the sheet changes nothing
    wide = Image.new("L", (im.width + 20, im.height + 40), 255)
    wide.paste(im, (10, 20))
    assert fingerprint(wide) == fingerprint(im)


def test_sheets_with_little_on_them_are_not_all_alike():
    """Trimming cuts at most a tenth of each side: two white sheets with one small mark each,
    in opposite corners, are not reduced to the same mark (issue 16's corpus draws such)."""
    marks = []
    for x, y in ((20, 20), (170, 70)):
        im = Image.new("L", (200, 100), 255)
        im.paste(0, (x, y, x + 6, y + 6))
        marks.append(fingerprint(im))
    assert distance(*marks) > DEFAULT_MAX_DISTANCE
