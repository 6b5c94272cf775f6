"""Every learning-proof run written down in bench/ (a GPU session's jobs file, an override's
usage line) gives a config that the workflow accepts: a typo in an override fails here, on the
CPU, and not minutes into a lease of GPU time. Also the layout oracle of bench/layout_oracle.py
and what a learning-proof result records."""

import importlib.util
import json
import re
import shlex
import sys
from pathlib import Path

import pytest

from drawtune.config import completed, schema_problem

ROOT = Path(__file__).resolve().parents[2]


def bench_module(name: str):
    """bench/<name>.py, loaded under a name of its own: bench/ is not put on sys.path, where
    its modules would shadow the tests' own helpers of the same name (near_duplicates)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(ROOT / "bench"))  # for the module's own imports (workdir) only
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(ROOT / "bench"))
    return module


learning_proof = bench_module("learning_proof")
config_files = learning_proof.config_files

# "--family qwen3_vl --override a.yaml ..." up to the end of the quoted string or the line
RUN = re.compile(r"--family [^\"\n]*")


def written_runs() -> list[tuple[str, tuple[str, ...]]]:
    """(where, arguments) of every learning-proof run in the jobs files and overrides."""
    runs = []
    for path in sorted((ROOT / "bench").glob("sessions/*.sh")) + sorted(
        (ROOT / "bench").glob("overrides/*.yaml")
    ):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if "learning_proof" in line or path.suffix == ".sh":
                for match in RUN.findall(line):
                    runs.append((f"{path.relative_to(ROOT)}:{n}", tuple(shlex.split(match))))
    return runs


def layered(args: tuple[str, ...]) -> dict:
    """The config Snakemake builds for these arguments: each file updates the one before."""
    family = args[args.index("--family") + 1]
    task = args[args.index("--task") + 1] if "--task" in args else "detect"
    overrides = [ROOT / args[i + 1] for i, a in enumerate(args) if a == "--override"]
    for p in overrides:
        assert p.is_file(), f"{p} is no file"
    return learning_proof.layered_config(config_files(family, task, overrides))


RUNS = written_runs()


def test_the_jobs_files_and_overrides_name_runs():
    # the sessions of runs 4-5 and D-F, the next one, and the overrides' usage lines
    assert len(RUNS) >= 8
    assert {a[a.index("--family") + 1] for _, a in RUNS} == {"qwen3_vl", "qwen2_5_vl"}


@pytest.mark.parametrize("where,args", RUNS, ids=[w for w, _ in RUNS])
def test_every_written_run_gives_a_valid_config(where, args):
    cfg = layered(args)
    assert schema_problem(cfg) is None, where
    cfg = completed(cfg)
    family = args[args.index("--family") + 1]
    assert cfg["model"]["family"] == family, where


def test_later_files_win_and_dicts_merge():
    args = (
        "--family",
        "qwen2_5_vl",
        "--override",
        "bench/overrides/lp-12k.yaml",
        "--override",
        "bench/overrides/lp-vision.yaml",
        "--override",
        "bench/overrides/lp-qwen2_5_vl.yaml",
        "--override",
        "bench/overrides/lp-headstart.yaml",
    )
    demo = layered(args)["experiments"]["demo"]
    # the head start comes last: its rates replace learning-proof-qwen2_5_vl.yaml's
    assert demo["learning_rate"] == 0.0002
    assert demo["extra_args"]["vit_lr"] == 0.002
    # and the checkpoints kept for the curve survive from learning-proof.yaml
    assert demo["extra_args"]["save_total_limit"] == 20
    assert layered(args)["datasets"]["demo"]["synthetic"]["width"] == 650
    # another seed changes the training's seed and nothing else
    seeded = ("--family", "qwen3_vl", *args[2:6], *args[8:])
    seeded += ("--override", "bench/overrides/lp-seed2.yaml")
    cfg, ref = layered(seeded), layered(seeded[:-2])
    assert cfg["experiments"]["demo"].pop("seed") == 7 != ref["experiments"]["demo"].pop("seed")
    assert cfg == ref


def test_the_curve_predicts_checkpoints_as_the_workflow_predicts_the_trained_model():
    # lp-vision.yaml trains at max_pixels 401408; the curve once took config/config.yaml's
    # 200704, and so scored every checkpoint but the last at a smaller image than it learned on
    base = ("--family", "qwen3_vl", "--override", "bench/overrides/lp-12k.yaml")
    plain = learning_proof.curve_predict_settings(layered(base))
    assert plain == {
        "min_pixels": 3136,
        "max_pixels": 200704,
        "batch_size": 64,
        "max_new_tokens": 320,
    }
    vision = base + ("--override", "bench/overrides/lp-vision.yaml")
    assert learning_proof.curve_predict_settings(layered(vision))["max_pixels"] == 401408
    fast = vision + ("--override", "bench/overrides/lp-score128.yaml")
    assert learning_proof.curve_predict_settings(layered(fast))["batch_size"] == 128
    # an experiment's own image size wins over the model's, as in the workflow's settings()
    cfg = layered(vision)
    cfg["experiments"]["demo"]["max_pixels"] = 250880
    assert learning_proof.curve_predict_settings(cfg)["max_pixels"] == 250880


def test_the_learning_proof_runs_two_gpu_rules_at_once_training_first():
    targets = ["results/metrics/demo/test.json", "results/metrics/base/test.json"]
    cmd = learning_proof.snakemake_command(targets, ["a.yaml"], None, 16)
    opt = {a: cmd[i + 1] for i, a in enumerate(cmd) if a.startswith("--")}
    # profiles/local gives one GPU slot; two here, and every GPU rule takes half the cores, so
    # that two of them (and not three) fit in --cores all
    assert opt["--resources"] == "gpu=2" and opt["--cores"] == "all"
    threads = dict(a.split("=") for a in cmd[cmd.index("--set-threads") + 1 :])
    assert {r: threads[r] for r in learning_proof.GPU_RULES} == dict.fromkeys(
        learning_proof.GPU_RULES, "8"
    )
    assert threads["synth_drawings"] == "16"
    # training, the longest step, is scheduled before the untrained model's predictions
    assert opt["--prioritize"] == targets[0]
    assert cmd[1:3] == targets and "--until" not in cmd
    until = learning_proof.snakemake_command(targets, [], ["build_tiny_model"], 1)
    assert until[-2:] == ["--until", "build_tiny_model"] and "train_adapter=1" in until


def test_layout_oracle_finds_boxes_at_their_layouts_mean_and_misses_moved_ones():
    lo = bench_module("layout_oracle")
    iou, layouts, oracle = lo.iou, lo.layouts, lo.oracle

    assert iou([0, 0, 10, 10], [0, 0, 10, 10]) == 1.0
    assert iou([0, 0, 10, 10], [5, 0, 15, 10]) == 1 / 3
    train = [[("view", [0, 0, 10, 10]), ("section_view", [20, 0, 30, 10])]] * 3
    moved = [[("view", [6, 0, 16, 10]), ("section_view", [20, 0, 30, 10])]]
    assert oracle(train, train)["view"] == {"boxes": 3, "found_at_iou50": 1.0}
    r = oracle(train, moved)
    assert r["view"]["found_at_iou50"] == 0.0 and r["section_view"]["found_at_iou50"] == 1.0
    # a layout never seen in training (one view alone) is missed, not guessed
    assert oracle(train, [[("view", [0, 0, 10, 10])]])["view"]["found_at_iou50"] == 0.0
    # the generator's sheets: views only, in grid order
    sheets = layouts(4, 320, 0)
    assert all(kind in ("view", "section_view", "detail_view") for s in sheets for kind, _ in s)


def scored_sheet(wd: Path, truth: dict, boxes: list[dict]) -> dict:
    """drawing_evidence of a run folder ``wd`` whose model `demo` answered ``boxes`` for the
    one test sheet a.png of ``truth``."""
    (wd / "results/splits").mkdir(parents=True)
    (wd / "results/splits/test.coco.json").write_text(json.dumps(truth))
    (wd / "results/metrics/demo").mkdir(parents=True)
    row = {"image": "a.png", "boxes": boxes, "parsed": True, "response": ""}
    (wd / "results/metrics/demo/test.details.jsonl").write_text(json.dumps(row) + "\n")
    return learning_proof.drawing_evidence(wd, "demo")


def test_the_learning_proof_records_which_class_each_true_box_was_taken_for(tmp_path):
    # one sheet: a view found, a section written as a view, a detail missed, a false alarm
    cats = [{"id": i + 1, "name": n} for i, n in enumerate(("view", "section_view", "detail_view"))]
    anns = [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10]},
        {"id": 2, "image_id": 1, "category_id": 2, "bbox": [50, 0, 10, 10]},
        {"id": 3, "image_id": 1, "category_id": 3, "bbox": [0, 50, 10, 10]},
    ]
    image = {"id": 1, "file_name": "a.png", "width": 100, "height": 100}
    truth = {"images": [image], "annotations": anns, "categories": cats}
    boxes = [
        {"label": "view", "bbox": [0, 0, 10, 10]},
        {"label": "view", "bbox": [50, 0, 60, 10]},
        {"label": "view", "bbox": [80, 80, 90, 90]},
    ]
    c = scored_sheet(tmp_path, truth, boxes)["confusion"]
    cell = {
        (r, k): c["matrix"][i][j] for i, r in enumerate(c["rows"]) for j, k in enumerate(c["cols"])
    }
    assert cell["view", "view"] == 1 and cell["section_view", "view"] == 1
    assert cell["detail_view", "missed"] == 1 and cell["false alarm", "view"] == 1
    assert cell["section_view", "section_view"] == 0


def test_the_learning_proof_scores_the_three_kinds_of_view_as_one_class(tmp_path):
    # the section written as a view is a miss for its class and a hit for the kinds of view
    cats = [{"id": i + 1, "name": n} for i, n in enumerate(learning_proof.VIEW_KINDS + ["note"])]
    anns = [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10]},
        {"id": 2, "image_id": 1, "category_id": 2, "bbox": [50, 0, 10, 10]},
        {"id": 3, "image_id": 1, "category_id": 4, "bbox": [0, 50, 10, 10]},
    ]
    image = {"id": 1, "file_name": "a.png", "width": 100, "height": 100}
    truth = {"images": [image], "annotations": anns, "categories": cats}
    boxes = [
        {"label": "view", "bbox": [0, 0, 10, 10], "score": 0.9},
        {"label": "view", "bbox": [50, 0, 60, 10], "score": 0.8},
        {"label": "note", "bbox": [80, 80, 90, 90], "score": 0.7},
    ]
    assert scored_sheet(tmp_path, truth, boxes)["grouped_ap50"] == {"view kinds": 1.0}
