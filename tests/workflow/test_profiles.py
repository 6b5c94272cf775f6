"""`snakemake --profile local|slurm|vertex` as the README has a user type it: a bare profile name
from the repository root (Snakemake 9 looks for ./NAME, ~/.config/snakemake/NAME and
/etc/xdg/snakemake/NAME only; the repository's top-level links local, slurm and vertex point into
profiles/), and a profile given by its path from another folder. Dry runs of the literal
commands, each checked for the profile's own resources on the GPU rules."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from conftest import BIN, ROOT, copy_workflow

pytestmark = pytest.mark.workflow

PROFILES = ("local", "slurm", "vertex")


def dry_run(cwd: Path, *args: str) -> str:
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    proc = subprocess.run(
        ["snakemake", *args, "-n"], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    return out


def train_resources(out: str) -> str:
    block = out[out.index("rule train_adapter:") :]
    return re.search(r"^\s+resources: (.*)$", block, re.M).group(1)


def test_the_top_level_profile_names_are_the_profiles_folders():
    for name in PROFILES:
        link = ROOT / name
        assert link.is_symlink() and os.readlink(link) == f"profiles/{name}", name
        assert (link / "config.yaml").resolve() == (ROOT / "profiles" / name / "config.yaml")


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> Path:
    """The workflow as a clone has it, top-level profile links included."""
    wd = copy_workflow(tmp_path_factory.mktemp("clone") / "drawtune")
    for name in PROFILES:
        os.symlink(os.readlink(ROOT / name), wd / name)
    return wd


@pytest.mark.parametrize(
    "name,expected",
    [
        ("local", r"gpu=1, cpus_per_gpu=8, runtime=1440, mem_mb=64000"),
        ("slurm", r"slurm_partition=gpu"),
        ("vertex", r"vertex=profiles/vertex/vertex\.yaml"),
    ],
)
def test_snakemake_profile_name_as_typed_from_the_repository_root(checkout, name, expected):
    out = dry_run(checkout, "--profile", name)
    assert f"Using profile {name} for setting default command line arguments" in out
    resources = train_resources(out)
    assert re.search(expected, resources), resources
    others = {"local": ("slurm_partition", "vertex="), "slurm": ("vertex=",)}
    for other in others.get(name, ("slurm_partition",)):
        assert other not in resources, resources


def test_profile_by_its_path_from_another_folder(checkout, tmp_path):
    """From elsewhere (README: "Running from another folder"), the profile is named by its
    path, the Snakefile and the config too; the vertex settings file is then found through the
    workflow's folder (drawtune.smk.settings_file)."""
    elsewhere = tmp_path / "project"
    elsewhere.mkdir()
    out = dry_run(
        elsewhere,
        "--snakefile",
        str(checkout / "Snakefile"),
        "--profile",
        str(checkout / "profiles/vertex"),
        "--configfile",
        str(checkout / "config/config.yaml"),
    )
    assert "vertex=profiles/vertex/vertex.yaml" in train_resources(out)
