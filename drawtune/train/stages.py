"""The GPU stages (train, merge, predict), each declared once.

A stage is a frozen dataclass: its fields are the stage's inputs, parameters and outputs, and
each field says how it travels to a Vertex AI job (``io`` in its metadata):

``model``
    a base or merged model: a local folder (staged), a gs:// folder or a hub id (as they are)
``jsonl``
    ms-swift rows, staged with every image they name
``path``
    a file or folder, staged as it is
``param``
    a value, sent in the job's task
``output``
    a file or folder the stage writes, downloaded into place after the job
``result``
    an output of ms-swift rows whose image paths are mapped back to the local ones
``log``
    the file the stage logs into; a job logs into its own and copies it to the bucket
``resume``
    what a restarted run resumes from (ms-swift's run folder with its checkpoints); a job keeps
    it in its staged place in the bucket (through the ``/gcs`` mount), so that a job restarted
    on another machine (a Spot preemption, maintenance) or submitted again finds it; never
    downloaded

The rule's script fills one in and hands it to ``drawtune.smk.run_stage``, which runs it here
(:meth:`GpuStage.run`) or as a Vertex AI job (``drawtune.vertex.job``) whose worker rebuilds the
same dataclass from the job's task (:func:`from_task`).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from ..coords import ResizeSpec
from ..errors import StageError
from ..jsonio import dump_jsonl, load_jsonl, write_json
from . import gpu_plan, launch, swift_cmd, swift_plugin, tracking
from .checkpoints import (
    TRAINING_STATE,
    check_adapter,
    clear_run_dir,
    last_checkpoint,
    recorded_fingerprint,
    resume_checkpoint,
    run_lock,
    write_adapter_record,
    write_fingerprint,
)
from .device import gpu_count
from .job_plan import PLAN_FILE, plan_line, plan_predict_batch, plan_train, vision_varlen_for
from .run import run_logged
from .telemetry import last_of_each_step, write_telemetry

log = logging.getLogger("drawtune")
IO_KINDS = ("model", "jsonl", "path", "param", "output", "result", "log", "resume")


def io(kind: str, **kwargs):
    """A stage field that travels to a Vertex AI job as ``kind`` (see the module docstring)."""
    assert kind in IO_KINDS, kind
    return field(metadata={"io": kind}, **kwargs)


@dataclass(frozen=True)
class GpuStage:
    """One GPU stage's arguments; :meth:`run` runs it on this machine. Every stage runs ms-swift
    for one model family, with the smart-resize bounds, logging into one file."""

    name: ClassVar[str]

    family: str = io("param")
    spec: ResizeSpec = io("param")
    log_path: str = io("log")

    def swift_env(self, model: str, device: str) -> dict:
        """ms-swift's environment for ``model`` (``drawtune.train.swift_cmd.swift_env``)."""
        spec = self.spec
        return swift_cmd.swift_env(self.family, spec.min_pixels, spec.max_pixels, model, device)

    def run(self, device: str = "cpu") -> None:
        raise NotImplementedError

    @classmethod
    def fields_of(cls, *kinds: str) -> list[str]:
        """The names of the fields that travel as one of ``kinds``, in declaration order."""
        return [f.name for f in dataclasses.fields(cls) if f.metadata["io"] in kinds]

    @classmethod
    def io_of(cls, name: str) -> str:
        """How the field ``name`` travels (one of IO_KINDS)."""
        return {f.name: f.metadata["io"] for f in dataclasses.fields(cls)}[name]

    def to_task(self) -> dict:
        """The arguments as JSON values (a resize spec as its fields)."""
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def replace(self, **changes) -> GpuStage:
        return dataclasses.replace(self, **changes)

    def in_job(self, chief: bool) -> GpuStage:
        """The stage as a Vertex AI replica runs it (``chief``: worker pool 0, or the only
        replica; the others only take part)."""
        return self


def _jsonable(value):
    return dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value


@dataclass(frozen=True)
class Train(GpuStage):
    """``swift sft`` for one experiment (rule train_adapter)."""

    name: ClassVar[str] = "train"

    base: str = io("model")
    train_jsonl: str = io("jsonl")
    val_jsonl: str | None = io("jsonl")
    train_cfg: dict = io("param")
    adapter_out: str = io("output")
    logging_out: str = io("output")
    tensorboard_out: str = io("output")
    run_dir: str = io("resume")  # ms-swift's checkpoints: what an interrupted run resumes
    manifest_jsonl: str | None = io("jsonl", default=None)
    telemetry_out: str | None = io("output", default=None)
    # the config's settings (checkpoints.adapter_settings), recorded in the adapter
    settings: dict | None = io("param", default=None)
    # a Vertex AI replica other than the chief: trains its share, leaves the run folder (shared
    # through the bucket) to the chief, writes no outputs
    follower: bool = io("param", default=False)

    def in_job(self, chief: bool) -> Train:
        return self if chief else self.replace(follower=True)

    def run(self, device: str = "cpu", environ=None) -> None:
        """``swift sft`` for one experiment, on every GPU and node of the job (``environ``: the
        job's environment, default ``os.environ``), resumed from the last complete checkpoint of
        an interrupted run with the same settings. The run folder is held by this trainer
        alone for the whole run (``checkpoints.run_lock``)."""
        if self.follower:  # the chief holds the run folder (on another machine)
            self._run(device, environ)
            return
        with run_lock(self.run_dir):
            self._run(device, environ)

    def _run(self, device: str, environ) -> None:
        run_dir = Path(self.run_dir)
        val = self.val_jsonl if self.val_jsonl and load_jsonl(self.val_jsonl) else None
        environ = launch.job_environ(os.environ if environ is None else environ)
        # the GPUs torch sees count only where the machine is the job's (a Vertex AI replica)
        topo = launch.topology(environ, gpu_count(device))
        choice = self.train_cfg.get("deepspeed", "auto")
        planned_ds = launch.deepspeed_stage(choice, topo, "cuda")
        planned = launch.launcher_env(topo, planned_ds)
        log.info(
            "launch: nodes=%d gpus_per_node=%d world_size=%d deepspeed=%s attention=%s %s",
            topo.nnodes,
            topo.gpus_per_node,
            topo.world_size,
            planned_ds or "none",
            swift_cmd.attn_impl(device),
            " ".join(f"{k}={v}" for k, v in sorted(planned.items())),
        )
        if device == "cpu" and topo.distributed:
            log.warning("the job has GPUs but torch sees none: training on CPU in one process")
            topo = launch.Topology(nnodes=1, gpus_per_node=0)
        deepspeed = launch.deepspeed_stage(choice, topo, device)
        if planned_ds and not deepspeed:
            log.warning("deepspeed %s needs a GPU: training on CPU without DeepSpeed", planned_ds)
        if deepspeed and importlib.util.find_spec("deepspeed") is None:
            raise StageError(
                f"deepspeed: {choice} needs DeepSpeed, which is not installed here: "
                "pip install -e '.[gpu]' (the version pinned in pyproject.toml)"
            )
        tracking.check_installed(tracking.trackers(self.train_cfg))
        plan = plan_train(
            self.train_cfg, self.base, self.train_jsonl, self.manifest_jsonl, self.family,
            device, topo,
        )  # fmt: skip
        while True:
            log_file = Path(self.log_path)
            start = log_file.stat().st_size if log_file.exists() else 0
            try:
                cfg, fingerprint = self._train_once(plan, val, device, environ, topo, deepspeed)
                break
            except StageError:
                nxt = gpu_plan.fallback(plan, self.train_cfg)
                with open(self.log_path, "rb") as fh:
                    fh.seek(start)
                    attempt = fh.read().decode(errors="replace")
                if nxt is None or self.follower or not gpu_plan.is_out_of_memory(attempt):
                    raise
                log.warning("out of memory with %s; retry with %s", plan_line(plan), plan_line(nxt))
                clear_run_dir(run_dir)
                plan = nxt
        if recorded_fingerprint(run_dir) != fingerprint:
            raise StageError(f"{run_dir} changed under this trainer: its settings are not ours")
        if self.follower:
            return  # the chief writes the adapter, logs and telemetry
        ckpt = last_checkpoint(run_dir)
        adapter_out = Path(self.adapter_out)
        if adapter_out.exists():
            shutil.rmtree(adapter_out)
        shutil.copytree(ckpt, adapter_out, ignore=shutil.ignore_patterns(*TRAINING_STATE))
        write_json(plan.as_dict(), adapter_out / PLAN_FILE)
        write_adapter_record(adapter_out, self.settings, fingerprint)
        # a resumed run logs the steps after its checkpoint again: the last of each is kept
        dump_jsonl(last_of_each_step(load_jsonl(run_dir / "logging.jsonl")), self.logging_out)
        tb = Path(self.tensorboard_out)
        if tb.exists():
            shutil.rmtree(tb)
        src = run_dir / "runs"
        shutil.copytree(src, tb) if src.is_dir() else tb.mkdir(parents=True)
        if self.telemetry_out:
            write_telemetry(
                self.logging_out, self.train_jsonl, self.manifest_jsonl, self.family, self.base,
                cfg, device, self.telemetry_out, self.log_path, gpus=topo.world_size,
                settings=plan.as_dict(),
            )  # fmt: skip

    def _train_once(self, plan, val, device, environ, topo, deepspeed) -> tuple[dict, dict]:
        """One ``swift sft`` with ``plan``'s settings; returns the resolved training block and
        the run's fingerprint."""
        run_dir = Path(self.run_dir)
        cfg = plan.apply(self.train_cfg)
        cmd = swift_cmd.sft_command(
            family=self.family,
            base=self.base,
            train=str(self.train_jsonl),
            val=val,
            output_dir=str(run_dir),
            train_cfg=cfg,
            device=device,
            deepspeed=deepspeed,
        )
        env = self.swift_env(self.base, device)
        env.update(
            swift_plugin.plugin_env(
                cfg["causal_mask"], cfg["vision_cache_gib"], cfg.get("vision_varlen", False)
            )
        )
        # An interrupted run with the same command resumes from its last complete checkpoint;
        # anything else starts over in a clean folder. The rendezvous address and port are left
        # out: they change from one SLURM job to the next.
        fingerprint = {"command": cmd, "environment": env}
        # neither is a setting of the run: torchrun's variables and NVLink multicast kept off
        env = {**env, **launch.launcher_env(topo, deepspeed), **launch.collectives_env(environ)}
        if "NPROC_PER_NODE" in env and topo.nnodes == 1 and "MASTER_PORT" not in environ:
            env["MASTER_PORT"] = str(launch.free_port())
        # where the trackers log (off-line, in the run folder): no training setting either
        names = tracking.trackers(self.train_cfg)
        env.update(tracking.tracking_env(names, run_dir, run_dir.parent.name, environ))
        resume = self.train_cfg.get("resume", True)
        ckpt = resume_checkpoint(run_dir, fingerprint) if resume else None
        if ckpt is None and self.follower:
            log.info("starting where the chief starts (%s is the chief's)", run_dir)
        elif ckpt is None:
            clear_run_dir(run_dir)
            write_fingerprint(run_dir, fingerprint)
        else:
            log.info("resuming from %s (an earlier run of this experiment was interrupted)", ckpt)
            cmd = cmd + swift_cmd.resume_args(str(ckpt))
        # several SLURM nodes: srun from this job step, with the step's SLURM variables dropped
        srun = topo.nnodes > 1 and topo.node_rank is None
        srun_env = launch.srun_environ(environ) if srun else None
        run_logged(
            launch.node_command(cmd, topo),
            env,
            self.log_path,
            label=f"swift sft {run_dir.parent.name}",
            environ=srun_env,
        )
        return cfg, fingerprint


@dataclass(frozen=True)
class Merge(GpuStage):
    """``swift export`` of a LoRA adapter into its base model (rule merge_adapter); a full
    fine-tuning checkpoint is the merged model already."""

    name: ClassVar[str] = "merge"

    base: str = io("model")
    adapter: str = io("path")
    tuner: str = io("param")
    merged_out: str = io("output")
    # the config's training settings (checkpoints.adapter_settings): the adapter must record them
    trained_with: dict | None = io("param", default=None)

    def run(self, device: str = "cpu") -> None:
        check_adapter(Path(self.adapter), self.trained_with)
        merged_out = Path(self.merged_out)
        if merged_out.exists():
            shutil.rmtree(merged_out)  # swift export silently skips an existing output folder
        if self.tuner == "full":
            ignore = shutil.ignore_patterns("trainer_state.json")
            shutil.copytree(self.adapter, merged_out, ignore=ignore)
            log.info("full fine-tuning: the checkpoint is the merged model: %s", self.adapter)
            return
        cmd = swift_cmd.export_command(
            family=self.family,
            base=self.base,
            adapter=str(self.adapter),
            output_dir=str(merged_out),
            device=device,
        )
        run_logged(cmd, self.swift_env(self.base, device), self.log_path)


@dataclass(frozen=True)
class Predict(GpuStage):
    """Greedy ``swift infer`` over one split (rule predict_split)."""

    name: ClassVar[str] = "predict"

    model: str = io("model")
    dataset: str = io("jsonl")
    batch_size: int | str = io("param")  # or "auto" (drawtune.train.job_plan)
    max_new_tokens: int = io("param")
    result_out: str = io("result")
    # answers with their tokens' log-probabilities and the top alternatives (box scores)
    logprobs: bool = io("param", default=False)
    top_logprobs: int = io("param", default=0)
    # the vision towers' attention as one varlen call per block (drawtune.train.swift_plugin)
    vision_varlen: bool | str = io("param", default="auto")

    def run(self, device: str = "cpu") -> None:
        result_out = Path(self.result_out)
        result_out.unlink(missing_ok=True)  # swift infer appends to an existing result file
        rows = load_jsonl(self.dataset)
        if not rows:  # a split without drawings (a small validation split): nothing to ask
            log.info("%s has no drawings: no answers", self.dataset)
            result_out.parent.mkdir(parents=True, exist_ok=True)
            result_out.write_text("")
            return
        batch_size, why = plan_predict_batch(
            self.batch_size, self.model, rows, self.family, self.spec, self.max_new_tokens, device
        )
        log.info("prediction batch: %d (%s)", batch_size, why)
        varlen = vision_varlen_for(self.vision_varlen, device)
        log.info("vision varlen: %s", "on" if varlen else "off")
        cmd, plugin_env = swift_cmd.infer_job(
            family=self.family,
            model=str(self.model),
            dataset=str(self.dataset),
            result_path=str(result_out),
            batch_size=batch_size,
            max_new_tokens=self.max_new_tokens,
            device=device,
            logprobs=self.logprobs,
            top_logprobs=self.top_logprobs,
            vision_varlen=varlen,
        )
        env = {
            **self.swift_env(str(self.model), device),
            **plugin_env,
        }
        run_logged(
            cmd,
            env,
            self.log_path,
            label=f"swift infer {result_out.parent.name}/{result_out.stem}",
        )
        n_in, n_out = len(rows), len(load_jsonl(result_out))
        if n_in != n_out:
            raise StageError(
                f"swift infer returned {n_out} rows for {n_in} inputs in {self.dataset}"
            )


STAGES: dict[str, type[GpuStage]] = {s.name: s for s in (Train, Merge, Predict)}


def stage_class(name: str) -> type[GpuStage]:
    """The stage a Vertex AI job's task names."""
    if name not in STAGES:
        raise StageError(f"unknown stage {name!r}; expected one of {', '.join(STAGES)}")
    return STAGES[name]


def from_task(name: str, arguments: dict) -> GpuStage:
    """A stage rebuilt from its name and :meth:`GpuStage.to_task` arguments (a Vertex AI
    job's worker)."""
    cls = stage_class(name)
    kinds = {f.name: f.type for f in dataclasses.fields(cls)}
    arguments = {
        k: ResizeSpec(**v) if kinds.get(k) == "ResizeSpec" and isinstance(v, dict) else v
        for k, v in arguments.items()
    }
    return cls(**arguments)
