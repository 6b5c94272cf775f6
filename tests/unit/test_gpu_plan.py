"""Settings that adapt to the GPU (drawtune.train.gpu_plan): the memory model against what the
H200 runs measured, the plans it makes for large and small cards, and the out-of-memory
fallback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import ROOT

from drawtune.train import gpu_plan
from drawtune.train.gpu_plan import Shape, fallback, plan_predict, plan_training, train_peak_gib

PROBE = json.loads((ROOT / "bench/results/gpu_probe.json").read_text())
SPEED = json.loads((ROOT / "bench/results/gpu_speed.json").read_text())
# the published Qwen3-VL-4B shape the GPU runs used (bench/gpu_probe.py)
QWEN3_VL_4B = Shape(params=4_437_815_808, layers=36, hidden=2560, vocab=151936, kv_dim=1024)
AUTO = {"tuner": "lora", "global_batch": 16, "lora": {"dtype": "auto"}}
H200, A100_40, L4 = 139.8, 39.4, 22.0  # GiB as torch reports them


def plan(gpu_gib, tokens=1105, **cfg):
    return plan_training(
        {**AUTO, **cfg}, shape=QWEN3_VL_4B, tokens=tokens, device="cuda", gpu_gib=gpu_gib,
        cpus=16, liger_ok=True,
    )  # fmt: skip


@pytest.mark.parametrize(
    "row", [r for r in PROBE["train"] if not r.get("oom")], ids=lambda r: r["name"]
)
def test_memory_model_is_conservative_on_every_measured_probe_row(row):
    """Predicted peak >= the H200's measured peak, and not so far above it that the plan wastes
    the card (fp32 LoRA adapters, the probe's setting)."""
    tokens = PROBE["tokens_per_sample"]
    got = train_peak_gib(
        QWEN3_VL_4B, row["batch"], tokens, ckpt=row["ckpt"], lora_dtype=row["lora_dtype"],
        liger=row["liger"],
    )  # fmt: skip
    assert row["peak_gib"] <= got <= row["peak_gib"] * 1.6


def test_memory_model_says_the_probes_out_of_memory_rows_do_not_fit():
    for row in (r for r in PROBE["train"] if r.get("oom")):
        need = train_peak_gib(
            QWEN3_VL_4B, row["batch"], PROBE["tokens_per_sample"], ckpt=False,
            lora_dtype=row["lora_dtype"], liger=True,
        )  # fmt: skip
        assert need > H200 * gpu_plan.USABLE, row["name"]


def test_h200_plan_is_the_measured_fast_path():
    p = plan(H200)
    assert (p.batch_size, p.grad_accum) == (8, 2)  # 16 samples a step, as configured
    assert not p.gradient_checkpointing
    assert p.liger and p.lora_dtype == "bfloat16" and p.dataloader_workers == 8
    # what the H200 run chose and held (ms-swift's reserved peak stayed under the card)
    measured = SPEED["workflow_train"]
    assert measured["plan"]["batch_size"] == p.batch_size
    assert measured["peak_mem_gib"] < H200


@pytest.mark.parametrize("gpu", [A100_40, L4], ids=["A100-40GB", "L4-24GB"])
def test_smaller_cards_get_a_setting_that_fits_and_the_same_global_batch(gpu):
    p = plan(gpu)
    assert p.predicted_gib <= gpu * gpu_plan.USABLE
    assert p.batch_size * p.grad_accum == 16


def test_checkpointing_only_when_one_sample_does_not_fit_without_it():
    # an A100 40GB holds micro-batches of 2 without checkpointing: no recomputation
    a100 = plan(A100_40)
    assert not a100.gradient_checkpointing and a100.batch_size == 2
    # an L4 24GB: only one ~1,100-token sample fits beside the 8.3 GiB of bf16 weights without
    # checkpointing; batch-1 steps are slow, so checkpointing with a larger micro-batch wins
    l4 = plan(L4)
    assert l4.gradient_checkpointing and l4.batch_size >= gpu_plan.MIN_CKPT_MICRO
    assert train_peak_gib(QWEN3_VL_4B, 1, 1105, ckpt=False, liger=True) <= L4 * gpu_plan.USABLE
    assert train_peak_gib(QWEN3_VL_4B, 2, 1105, ckpt=False, liger=True) > L4 * gpu_plan.USABLE
    # a card where nothing fits without checkpointing
    assert plan(16.0).gradient_checkpointing
    # too small a card for the weights: the smallest setting, not a crash
    tiny = plan(8.0)
    assert (tiny.batch_size, tiny.gradient_checkpointing) == (1, True)


def test_longer_samples_get_a_smaller_micro_batch():
    assert plan(H200, tokens=4000).batch_size < plan(H200, tokens=1000).batch_size


def test_config_values_override_the_plan():
    p = plan(H200, batch_size=2, grad_accum=3, gradient_checkpointing=True, liger=False)
    assert (p.batch_size, p.grad_accum, p.gradient_checkpointing, p.liger) == (2, 3, True, False)
    q = plan(H200, batch_size=4)  # accumulation still makes up the global batch
    assert (q.batch_size, q.grad_accum) == (4, 4)
    assert plan(H200, lora={"dtype": "float32"}).lora_dtype == "float32"


def test_several_gpus_share_the_global_batch():
    p = plan_training(
        AUTO, shape=QWEN3_VL_4B, tokens=1105, device="cuda", gpu_gib=H200, world_size=4
    )
    assert p.batch_size * p.grad_accum * 4 == 16


def test_cpu_and_unknown_shapes_take_the_safe_choice():
    cpu = plan_training(AUTO, shape=None, tokens=1000, device="cpu", gpu_gib=None, cpus=2)
    assert (cpu.batch_size, cpu.grad_accum, cpu.dataloader_workers) == (2, 8, 0)
    assert not cpu.liger and cpu.lora_dtype == "float32"
    hub = plan_training(AUTO, shape=None, tokens=1000, device="cuda", gpu_gib=H200, cpus=4)
    assert (hub.batch_size, hub.gradient_checkpointing, hub.dataloader_workers) == (1, True, 3)
    assert not plan_training(
        AUTO, shape=QWEN3_VL_4B, tokens=1000, device="cuda", gpu_gib=H200, liger_ok=False
    ).liger


def test_fallback_halves_the_micro_batch_then_checkpoints_then_gives_up():
    p, seen = plan(H200), []
    while p is not None:
        seen.append((p.batch_size, p.grad_accum, p.gradient_checkpointing))
        p = fallback(p, AUTO)
    assert seen == [(8, 2, False), (4, 4, False), (2, 8, False), (1, 16, False), (1, 16, True)]
    # a micro-batch fixed in config is never changed; checkpointing fixed off: nothing left
    fixed = {**AUTO, "batch_size": 8, "gradient_checkpointing": False}
    assert fallback(plan(H200, batch_size=8, gradient_checkpointing=False), fixed) is None


def test_apply_resolves_every_auto():
    cfg = {**AUTO, "batch_size": "auto", "grad_accum": "auto", "liger": "auto",
           "gradient_checkpointing": "auto", "dataloader_workers": "auto"}  # fmt: skip
    out = plan(H200).apply(cfg)
    assert "auto" not in json.dumps(out)
    assert out["lora"]["dtype"] == "bfloat16" and cfg["lora"]["dtype"] == "auto"


def test_prediction_batch_fits_the_card_and_the_inputs():
    args = dict(shape=QWEN3_VL_4B, tokens=1108, new_tokens=128, device="cuda")
    big, _ = plan_predict("auto", n_inputs=10_000, gpu_gib=H200, **args)
    small, _ = plan_predict("auto", n_inputs=10_000, gpu_gib=L4, **args)
    assert big == gpu_plan.MAX_PREDICT_BATCH and 1 <= small < big
    assert gpu_plan.predict_peak_gib(QWEN3_VL_4B, small, 1108, 128) <= L4 * gpu_plan.USABLE
    assert plan_predict("auto", n_inputs=30, gpu_gib=H200, **args)[0] == 30
    assert plan_predict(6, n_inputs=30, gpu_gib=H200, **args)[0] == 6
    assert plan_predict("auto", n_inputs=30, gpu_gib=None, **{**args, "device": "cpu"})[0] == 4


def test_prediction_memory_model_covers_the_measured_generation_peaks():
    """bench/gpu_probe.py's generation rows: the predicted peak is at or above the measured one
    (prompt tokens and 128 new tokens as the probe ran them)."""
    for row in PROBE["generate"]:
        if row.get("oom") or row.get("cache_implementation"):
            continue
        got = gpu_plan.predict_peak_gib(QWEN3_VL_4B, row["batch"], PROBE["tokens_per_sample"], 128)
        assert row["peak_gib"] <= got <= row["peak_gib"] * 1.6, row["name"]


def test_shape_from_a_qwen_vl_config():
    text = {"num_hidden_layers": 36, "hidden_size": 2560, "num_attention_heads": 32,
            "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 151936}  # fmt: skip
    cfg = {"text_config": text}
    assert Shape.from_config(cfg, QWEN3_VL_4B.params) == QWEN3_VL_4B
    flat = {"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 4,
            "num_key_value_heads": 2, "vocab_size": 10}  # fmt: skip
    assert Shape.from_config(flat, 1).kv_dim == 32


def test_out_of_memory_is_recognised_in_a_log():
    assert gpu_plan.is_out_of_memory("torch.OutOfMemoryError: CUDA out of memory. Tried ...")
    assert not gpu_plan.is_out_of_memory("ValueError: bad dataset")


# ---------------------------------------------------------------------------- the train stage
FAKE_SWIFT = r"""#!{python}
# Stands in for `swift sft` on a GPU: fails as PyTorch does when the micro-batch is above
# {limit}, else writes what ms-swift writes (a complete checkpoint and logging.jsonl).
import json, pathlib, sys
args = sys.argv[2:]
get = lambda k: args[args.index(k) + 1]
with open(pathlib.Path(get("--output_dir")).parent / "calls.jsonl", "a") as fh:
    fh.write(json.dumps(args) + "\n")
if int(get("--per_device_train_batch_size")) > {limit}:
    print("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB")
    sys.exit(1)
ck = pathlib.Path(get("--output_dir")) / "checkpoint-2"
ck.mkdir(parents=True)
(ck / "trainer_state.json").write_text("{{}}")
(ck / "adapter_config.json").write_text("{{}}")
(ck.parent / "logging.jsonl").write_text(json.dumps({{"loss": 1.0}}) + "\n")
"""


def _safetensors(path: Path, n: int) -> None:
    header = json.dumps({"w": {"dtype": "BF16", "shape": [n], "data_offsets": [0, 0]}}).encode()
    path.write_bytes(len(header).to_bytes(8, "little") + header)


def _train_on_fake_gpu(tmp_path, monkeypatch, limit, **cfg):
    import sys

    from drawtune.coords import ResizeSpec
    from drawtune.train.stages import Train

    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "swift"
    fake.write_text(FAKE_SWIFT.format(python=sys.executable, limit=limit))
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{__import__('os').environ['PATH']}")
    monkeypatch.setattr(gpu_plan, "gpu_memory_gib", lambda device: H200)
    monkeypatch.setattr(gpu_plan, "liger_available", lambda: True)
    base = tmp_path / "base"
    base.mkdir()
    text = {"num_hidden_layers": 36, "hidden_size": 2560, "num_attention_heads": 32,
            "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 151936}  # fmt: skip
    (base / "config.json").write_text(json.dumps({"text_config": text}))
    _safetensors(base / "model.safetensors", QWEN3_VL_4B.params)
    row = {"messages": [{"role": "user", "content": "<image>find"},
                        {"role": "assistant", "content": "[]"}], "images": ["a.png"]}  # fmt: skip
    (tmp_path / "train.jsonl").write_text(json.dumps(row) + "\n")
    (tmp_path / "train.manifest.jsonl").write_text(
        json.dumps({"image": "a.png", "resized_width": 1024, "resized_height": 1024}) + "\n"
    )
    train_cfg = {
        **AUTO, "epochs": 1, "learning_rate": 1e-4, "max_length": 4096, "warmup_ratio": 0.0,
        "weight_decay": 0.0, "freeze_vit": True, "freeze_aligner": True, "seed": 1,
        "logging_steps": 1, "batch_size": "auto", "grad_accum": "auto", "liger": "auto",
        "gradient_checkpointing": "auto", "dataloader_workers": "auto", "resume": False,
        "lora": {"rank": 8, "alpha": 32, "dropout": 0.0, "dtype": "auto",
                 "target_modules": "all-linear"},
        **cfg,
    }  # fmt: skip
    out = tmp_path / "out"
    Train(
        family="qwen3_vl", base=str(base), train_jsonl=tmp_path / "train.jsonl", val_jsonl=None,
        train_cfg=train_cfg, spec=ResizeSpec(3136, 1024 * 1024), run_dir=out / "run",
        adapter_out=out / "adapter", logging_out=out / "logging.jsonl",
        tensorboard_out=out / "tb", log_path=tmp_path / "train.log",
        manifest_jsonl=tmp_path / "train.manifest.jsonl",
    ).run(device="cuda", environ={})  # fmt: skip
    calls = [json.loads(x) for x in (out / "calls.jsonl").read_text().splitlines()]
    return calls, out, (tmp_path / "train.log").read_text()


def _flag(args, name):
    return args[args.index(name) + 1]


def test_train_stage_retries_out_of_memory_with_half_the_micro_batch(tmp_path, monkeypatch, caplog):
    caplog.set_level("INFO", logger="drawtune")
    calls, out, log = _train_on_fake_gpu(tmp_path, monkeypatch, limit=2)
    micro = [int(_flag(c, "--per_device_train_batch_size")) for c in calls]
    accum = [int(_flag(c, "--gradient_accumulation_steps")) for c in calls]
    assert micro == [8, 4, 2] and accum == [2, 4, 8]  # 16 samples a step throughout
    last = calls[-1]
    assert _flag(last, "--use_liger_kernel") == "true"
    assert _flag(last, "--lora_dtype") == "bfloat16"
    assert _flag(last, "--gradient_checkpointing") == "false"
    assert _flag(last, "--dataloader_num_workers") == str(min(8, gpu_plan.cpu_count() - 1))
    plan = json.loads((out / "adapter" / "drawtune_plan.json").read_text())
    assert (plan["batch_size"], plan["grad_accum"]) == (2, 8)
    assert "out of memory at micro-batch 4" in plan["reason"]
    assert log.count("CUDA out of memory") == 2  # swift's own output, in the rule's log
    said = caplog.text
    assert said.count("out of memory with micro-batch") == 2 and "plan: micro-batch 8" in said


def test_train_stage_does_not_retry_a_micro_batch_fixed_in_config(tmp_path, monkeypatch):
    from drawtune.errors import StageError

    with pytest.raises(StageError, match="exited with 1"):
        _train_on_fake_gpu(tmp_path, monkeypatch, limit=2, batch_size=4,
                           gradient_checkpointing=False)  # fmt: skip
    calls = (tmp_path / "out" / "calls.jsonl").read_text().splitlines()
    assert len(calls) == 1


def _hub_cache(root: Path, repo: str, files: dict) -> Path:
    """A Hugging Face cache holding ``files`` of ``repo`` (the layout huggingface_hub reads)."""
    folder = root / f"models--{repo.replace('/', '--')}"
    snap = folder / "snapshots" / ("0" * 40)
    snap.mkdir(parents=True)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text("0" * 40)
    for name, text in files.items():
        (snap / name).write_text(text)
    return root


def test_a_hub_id_in_the_local_cache_gets_its_real_shape(tmp_path):
    """`base: Qwen/Qwen3-VL-4B-Instruct` is planned from the cached config.json and the
    safetensors index's size, not given the safe micro-batch 1."""
    from drawtune.train.job_plan import _shape

    text = {"num_hidden_layers": 36, "hidden_size": 2560, "num_attention_heads": 32,
            "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 151936}  # fmt: skip
    index = {"metadata": {"total_size": QWEN3_VL_4B.params * 2}, "weight_map": {}}
    cache = _hub_cache(tmp_path, "Qwen/Qwen3-VL-4B-Instruct", {
        "config.json": json.dumps({"text_config": text}),
        "model.safetensors.index.json": json.dumps(index),
    })  # fmt: skip
    assert _shape("Qwen/Qwen3-VL-4B-Instruct", cache_dir=cache) == QWEN3_VL_4B
    # without the index, the size in the name (4 B) stands in
    only_config = _hub_cache(tmp_path / "b", "Org/Some-VL-4B", {
        "config.json": json.dumps({"text_config": text}),
    })  # fmt: skip
    assert _shape("Org/Some-VL-4B", cache_dir=only_config).params == 4_000_000_000


def test_a_hub_id_that_cannot_be_read_takes_the_safe_plan(tmp_path, monkeypatch):
    from drawtune.train import job_plan

    def offline(*a, **k):
        raise OSError("no network")

    monkeypatch.setattr(job_plan, "hf_hub_download", offline)
    assert job_plan._shape("Qwen/Qwen3-VL-4B-Instruct", cache_dir=tmp_path) is None


def test_causal_mask_is_on_unless_config_says_no():
    assert plan(H200).causal_mask
    assert not plan(H200, causal_mask=False).causal_mask
    assert plan_training(AUTO, shape=None, tokens=1000, device="cpu", gpu_gib=None).causal_mask


def test_vision_varlen_is_on_where_the_gpu_can_run_it_unless_config_says_no():
    def varlen(device="cuda", ok=True, **cfg):
        return plan_training(
            {**AUTO, **cfg}, shape=None, tokens=1000, device=device, gpu_gib=H200, varlen_ok=ok
        ).vision_varlen

    assert varlen(), "a GPU with varlen_attn and no flash-attn"
    assert not varlen(ok=False), "flash-attn installed, or a PyTorch without varlen_attn"
    assert not varlen(device="cpu"), "no CUDA kernel on a CPU"
    assert not varlen(vision_varlen=False)
    assert varlen(ok=False, vision_varlen=True), "config's true is kept"
    p = plan_training(AUTO, shape=None, tokens=1000, device="cuda", gpu_gib=H200, varlen_ok=True)
    assert p.apply(AUTO)["vision_varlen"] is True


def test_vision_cache_takes_what_the_plan_leaves_free_from_the_second_epoch():
    one_epoch = plan(H200)
    assert one_epoch.vision_cache_gib == 0.0, "nothing is seen twice in one epoch"
    p = plan(H200, epochs=3)
    free = H200 * gpu_plan.USABLE - p.predicted_gib
    assert p.vision_cache_gib == round(min(gpu_plan.MAX_VISION_CACHE_GIB, free), 1) > 0
    # an L4 is full with the training itself: little or nothing left for the cache
    small = plan(L4, epochs=3)
    assert 0 <= small.vision_cache_gib <= L4 * gpu_plan.USABLE - small.predicted_gib + 0.05
    assert plan(H200, epochs=3, vision_cache=False).vision_cache_gib == 0.0
    assert plan(H200, epochs=3, vision_cache=5).vision_cache_gib == 5.0
    assert plan(H200, epochs=3, freeze_vit=False).vision_cache_gib == 0.0, "a trained tower"
    cpu = plan_training({**AUTO, "epochs": 3}, shape=None, tokens=1000, device="cpu", gpu_gib=None)
    assert cpu.vision_cache_gib == 0.0
    applied = p.apply({**AUTO, "epochs": 3})
    assert applied["vision_cache_gib"] == p.vision_cache_gib and applied["causal_mask"]
