"""ms-swift command lines and environment, and schema defaults behind them."""

from __future__ import annotations

import pytest

from drawtune.config import fill_defaults, load_schema
from drawtune.train.gpu_plan import plan_training
from drawtune.train.swift_cmd import export_command, infer_command, sft_command, swift_env

HUB_ID = "Qwen/Qwen3-VL-4B-Instruct"


def train_cfg(**experiment) -> dict:
    experiment.setdefault("tuner", "lora")
    return fill_defaults({"experiments": {"x": experiment}}, load_schema())["experiments"]["x"]


def flag(cmd: list[str], name: str) -> str:
    assert cmd.count(name) == 1, f"{name} appears {cmd.count(name)} times in {cmd}"
    return cmd[cmd.index(name) + 1]


def resolved(cfg: dict) -> dict:
    """A training block with its ``auto`` settings resolved for a CPU job."""
    return plan_training(cfg, shape=None, tokens=1000, device="cpu", gpu_gib=None).apply(cfg)


def sft(tmp_path, family="qwen3_vl", val=None, **experiment) -> list[str]:
    return sft_command(
        family=family,
        base=str(tmp_path / "base"),
        train="data/train.jsonl",
        val=val,
        output_dir="results/run/x",
        train_cfg=resolved(train_cfg(**experiment)),
    )


# ---------------------------------------------------------------------------- config


def test_fill_defaults_through_ref_and_additional_properties():
    cfg = train_cfg()
    assert cfg["tuner"] == "lora"
    assert cfg["lora"] == {
        "rank": 8,
        "alpha": 32,
        "dropout": 0.05,
        "dtype": "auto",
        "target_modules": "all-linear",
    }
    assert cfg["extra_args"] == {}
    # the speed settings adapt to the job's GPU unless config fixes them (drawtune.train.gpu_plan)
    for key in ("batch_size", "grad_accum", "gradient_checkpointing", "dataloader_workers"):
        assert cfg[key] == "auto"
    assert cfg["liger"] == "auto" and cfg["global_batch"] == 16
    assert cfg["learning_rate"] == 0.0001
    assert cfg["freeze_vit"] is True


def test_fill_defaults_keeps_given_values_and_fills_siblings():
    schema = load_schema()
    given = {"experiments": {"a": {"tuner": "qlora", "lora": {"rank": 16}}, "b": {"epochs": 3}}}
    out = fill_defaults(given, schema)
    assert out["experiments"]["a"]["lora"] == {
        "rank": 16,
        "alpha": 32,
        "dropout": 0.05,
        "dtype": "auto",
        "target_modules": "all-linear",
    }
    assert out["experiments"]["a"]["tuner"] == "qlora"
    assert out["experiments"]["b"]["epochs"] == 3
    assert out["experiments"]["b"]["tuner"] == "lora"
    # top-level defaults too, and nothing invented where the schema has no default
    assert out["split"] == {"val": 0.1, "test": 0.2, "salt": "drawtune"}
    assert out["predict"] == {
        "vision_varlen": "auto",
        "batch_size": "auto",
        "max_new_tokens": 512,
        "logprobs": True,
        "top_logprobs": 5,
    }
    assert "model" not in out
    # the input is left alone
    assert given == {
        "experiments": {"a": {"tuner": "qlora", "lora": {"rank": 16}}, "b": {"epochs": 3}}
    }


def test_fill_defaults_dataset_entries():
    out = fill_defaults(
        {"datasets": {"d": {"format": "swift", "annotations": "a.jsonl"}}}, load_schema()
    )
    assert out["datasets"]["d"] == {
        "format": "swift",
        "annotations": "a.jsonl",
        "images": None,
        "coords": "qwen3_vl",
        "group_key": None,
        "aliases": {},
        "on_error": "reject",
        "on_empty": "warn",
        "drop": [],
        "holdout": True,
        "box_units": "pixels",
        "task": "detect",
        "columns": {"image": "image", "label": "label"},
    }


# --------------------------------------------------------------------------- sft


@pytest.mark.parametrize("family", ["qwen3_vl", "qwen2_5_vl"])
def test_sft_command_is_explicit(tmp_path, family):
    cmd = sft(tmp_path, family=family)
    assert cmd[:2] == ["swift", "sft"]
    assert flag(cmd, "--model") == str(tmp_path / "base")
    assert flag(cmd, "--model_type") == family
    assert flag(cmd, "--template") == family
    assert flag(cmd, "--tuner_type") == "lora"
    assert flag(cmd, "--check_model") == "false"
    assert flag(cmd, "--add_version") == "false"
    assert flag(cmd, "--output_dir") == "results/run/x"
    assert flag(cmd, "--dataset") == "data/train.jsonl"
    # CPU: micro-batch 2, accumulation making up the default global batch of 16, no workers
    assert flag(cmd, "--per_device_train_batch_size") == "2"
    assert flag(cmd, "--gradient_accumulation_steps") == "8"
    assert flag(cmd, "--dataloader_num_workers") == "0"
    assert flag(cmd, "--gradient_checkpointing") == "false"
    assert flag(cmd, "--lora_dtype") == "float32"
    assert "--use_liger_kernel" not in cmd
    # the causal-only mask (drawtune.train.swift_plugin) is on by default, the plugin loaded
    assert flag(cmd, "--external_plugins").endswith("drawtune/train/swift_plugin.py")
    assert flag(cmd, "--eval_strategy") == "no"
    assert "--val_dataset" not in cmd
    assert all(isinstance(x, str) for x in cmd)


def test_sft_command_takes_values_from_config(tmp_path):
    cmd = sft(
        tmp_path,
        val="data/val.jsonl",
        grad_accum=4,
        dataloader_workers=2,
        seed=7,
        freeze_vit=False,
        extra_args={"lr_scheduler_type": "cosine"},
    )
    assert flag(cmd, "--gradient_accumulation_steps") == "4"
    assert flag(cmd, "--dataloader_num_workers") == "2"
    assert flag(cmd, "--seed") == "7"
    assert flag(cmd, "--data_seed") == "7"
    assert flag(cmd, "--freeze_vit") == "false"
    assert flag(cmd, "--val_dataset") == "data/val.jsonl"
    assert flag(cmd, "--eval_strategy") == "epoch"
    assert flag(cmd, "--lr_scheduler_type") == "cosine"
    off = sft(tmp_path, causal_mask=False)
    assert "--external_plugins" not in off, "no speed-up asked for: ms-swift as it is"
    varlen = sft(tmp_path, causal_mask=False, vision_varlen=True)
    assert flag(varlen, "--external_plugins").endswith("swift_plugin.py")


def test_lora_flags_only_for_lora(tmp_path):
    lora = sft(tmp_path, tuner="lora", lora={"rank": 16, "target_modules": "q_proj v_proj"})
    assert flag(lora, "--lora_rank") == "16"
    assert flag(lora, "--lora_alpha") == "32"
    assert flag(lora, "--lora_dropout") == "0.05"
    i = lora.index("--target_modules")
    assert lora[i + 1 : i + 3] == ["q_proj", "v_proj"]
    assert "--quant_bits" not in lora

    full = sft(tmp_path, tuner="full")
    assert flag(full, "--tuner_type") == "full"
    assert not [x for x in full if x.startswith("--lora") or x == "--target_modules"]
    assert "--quant_bits" not in full

    qlora = sft(tmp_path, tuner="qlora")
    assert flag(qlora, "--tuner_type") == "lora"
    assert flag(qlora, "--lora_rank") == "8"
    assert flag(qlora, "--quant_bits") == "4"


def test_hub_model_is_fetched_with_hf(tmp_path):
    cmd = sft_command(
        family="qwen3_vl",
        base=HUB_ID,
        train="t.jsonl",
        val=None,
        output_dir="o",
        train_cfg=resolved(train_cfg()),
    )
    assert flag(cmd, "--use_hf") == "true"
    assert "--use_hf" not in sft(tmp_path)


def test_cpu_and_gpu_dtype(tmp_path):
    cpu = sft(tmp_path)
    assert flag(cpu, "--torch_dtype") == "float32"
    assert flag(cpu, "--attn_impl") == "sdpa"
    gpu = sft_command(
        family="qwen3_vl",
        base=str(tmp_path),
        train="t",
        val=None,
        output_dir="o",
        train_cfg=resolved(train_cfg()),
        device="cuda",
    )
    assert flag(gpu, "--torch_dtype") == "bfloat16"
    assert flag(gpu, "--attn_impl") in ("sdpa", "flash_attn")


# --------------------------------------------------------------------------- env


@pytest.mark.parametrize(
    "family, max_tokens, min_tokens", [("qwen2_5_vl", 256, 4), ("qwen3_vl", 196, 3)]
)
def test_swift_env_token_counts(tmp_path, family, max_tokens, min_tokens):
    # max 200704: 200704 // 784 = 256 (28x28 tokens), 200704 // 1024 = 196 (32x32 tokens)
    # min 3136:   3136 // 784 = 4, 3136 // 1024 = 3
    env = swift_env(family, 3136, 200704, str(tmp_path))
    assert env["QWENVL_BBOX_FORMAT"] == "new"
    assert env["IMAGE_MAX_TOKEN_NUM"] == str(max_tokens)
    assert env["IMAGE_MIN_TOKEN_NUM"] == str(min_tokens)
    f2 = 784 if family == "qwen2_5_vl" else 1024
    assert env["MAX_PIXELS"] == str(max_tokens * f2)
    assert env["MIN_PIXELS"] == str(min_tokens * f2)
    assert env["CUDA_VISIBLE_DEVICES"] == ""
    assert all(isinstance(v, str) for v in env.values())


def test_swift_env_rounds_token_counts_down():
    # 1003520 // 784 = 1280; 1003520 // 1024 = 980 (980.0 exactly); 100000 // 784 = 127
    assert swift_env("qwen2_5_vl", 3136, 1003520, HUB_ID)["IMAGE_MAX_TOKEN_NUM"] == "1280"
    assert swift_env("qwen3_vl", 3136, 1003520, HUB_ID)["IMAGE_MAX_TOKEN_NUM"] == "980"
    assert swift_env("qwen2_5_vl", 3136, 100_000, HUB_ID)["IMAGE_MAX_TOKEN_NUM"] == "127"
    assert swift_env("qwen3_vl", 100, 100_000, HUB_ID)["IMAGE_MIN_TOKEN_NUM"] == "1"


def test_swift_env_offline_only_for_local_models(tmp_path):
    local = swift_env("qwen3_vl", 3136, 200704, str(tmp_path))
    assert local["HF_HUB_OFFLINE"] == "1"
    assert swift_env("qwen3_vl", 3136, 200704, "resources/models/tiny")["HF_HUB_OFFLINE"] == "1"
    hub = swift_env("qwen3_vl", 3136, 200704, HUB_ID)
    assert "HF_HUB_OFFLINE" not in hub
    assert "HF_DATASETS_OFFLINE" not in hub
    assert hub["QWENVL_BBOX_FORMAT"] == "new"


def test_swift_env_gpu_keeps_devices_visible(tmp_path):
    assert "CUDA_VISIBLE_DEVICES" not in swift_env("qwen3_vl", 3136, 200704, str(tmp_path), "cuda")


# ------------------------------------------------------------------------ infer/export


def test_infer_command(tmp_path):
    cmd = infer_command(
        family="qwen2_5_vl",
        model=str(tmp_path / "merged"),
        dataset="data/test.jsonl",
        result_path="results/pred.jsonl",
        batch_size=4,
        max_new_tokens=256,
    )
    assert cmd[:2] == ["swift", "infer"]
    assert flag(cmd, "--temperature") == "0"
    assert flag(cmd, "--result_path") == "results/pred.jsonl"
    assert flag(cmd, "--val_dataset") == "data/test.jsonl"
    assert flag(cmd, "--max_batch_size") == "4"
    assert flag(cmd, "--max_new_tokens") == "256"
    assert flag(cmd, "--model_type") == "qwen2_5_vl"
    assert flag(cmd, "--template") == "qwen2_5_vl"
    assert "--logprobs" not in cmd and "--top_logprobs" not in cmd
    kw = dict(family="qwen3_vl", model="m", dataset="d", result_path="r", batch_size=1)
    cmd = infer_command(**kw, max_new_tokens=8, logprobs=True, top_logprobs=5)
    assert flag(cmd, "--logprobs") == "true" and flag(cmd, "--top_logprobs") == "5"
    cmd = infer_command(**kw, max_new_tokens=8, logprobs=True)
    assert flag(cmd, "--logprobs") == "true" and "--top_logprobs" not in cmd
    assert "--external_plugins" not in cmd, "no plugin unless the varlen call is asked for"
    cmd = infer_command(**kw, max_new_tokens=8, vision_varlen=True)
    assert flag(cmd, "--external_plugins").endswith("swift_plugin.py")


def test_infer_job_loads_and_switches_the_plugin_together():
    from drawtune.train.swift_cmd import infer_job

    kw = dict(family="qwen3_vl", model="m", dataset="d", result_path="r", batch_size=1)
    cmd, env = infer_job(**kw, max_new_tokens=8, vision_varlen=True)
    assert flag(cmd, "--external_plugins").endswith("swift_plugin.py")
    assert env == {"DRAWTUNE_VISION_VARLEN": "1"}
    cmd, env = infer_job(**kw, max_new_tokens=8, vision_varlen=False)
    assert "--external_plugins" not in cmd and env == {}
    assert infer_job(**kw, max_new_tokens=8)[1] == {}


def test_vision_varlen_auto_is_a_gpu_with_varlen_attn_and_no_flash_attn(monkeypatch):
    from drawtune.train import job_plan, swift_cmd, swift_plugin

    assert not job_plan.vision_varlen_for("auto", "cpu")
    assert job_plan.vision_varlen_for(True, "cpu") and not job_plan.vision_varlen_for(False, "cuda")
    monkeypatch.setattr(swift_plugin, "varlen_available", lambda: True)
    monkeypatch.setattr(swift_cmd, "attn_impl", lambda device: "sdpa")
    assert job_plan.vision_varlen_for("auto", "cuda")
    monkeypatch.setattr(swift_cmd, "attn_impl", lambda device: "flash_attn")
    assert not job_plan.vision_varlen_for("auto", "cuda"), "flash-attn does it already"
    monkeypatch.setattr(swift_cmd, "attn_impl", lambda device: "sdpa")
    monkeypatch.setattr(swift_plugin, "varlen_available", lambda: False)
    assert not job_plan.vision_varlen_for("auto", "cuda"), "a PyTorch without varlen_attn"


def test_export_command(tmp_path):
    cmd = export_command(
        family="qwen3_vl", base=HUB_ID, adapter="results/adapter", output_dir="results/merged"
    )
    assert cmd[:2] == ["swift", "export"]
    assert flag(cmd, "--adapters") == "results/adapter"
    assert flag(cmd, "--merge_lora") == "true"
    assert flag(cmd, "--output_dir") == "results/merged"
