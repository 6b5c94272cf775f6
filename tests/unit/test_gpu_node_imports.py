"""GPU nodes (the H200 machine, a Vertex AI image) install only what training and prediction
need: the workflow must parse and the GPU stages and `drawtune serve` must import there without
the libraries of CPU-side steps (sahi and its OpenCV for tiling)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from conftest import ROOT

CPU_ONLY = ("sahi", "cv2", "shapely")

PROBE = textwrap.dedent(
    f"""
    import builtins, sys
    real = builtins.__import__
    def blocked(name, *a, **k):
        if name.split(".")[0] in {CPU_ONLY!r}:
            raise ImportError(f"{{name}} is not on GPU nodes")
        return real(name, *a, **k)
    builtins.__import__ = blocked
    import drawtune.train.stages, drawtune.serve, drawtune.smk, drawtune.data.tiling
    import drawtune.eval.merge_tiles, drawtune.vertex.worker
    from snakemake.api import SnakemakeApi  # noqa: F401
    print("ok")
    """
)


def test_gpu_stages_import_without_cpu_only_libraries():
    proc = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().endswith("ok")


def test_workflow_parses_without_cpu_only_libraries(tmp_path):
    """A dry run with sahi blocked: the rules and their helpers import it lazily."""
    wrapper = tmp_path / "block.py"
    wrapper.write_text(
        PROBE.replace(
            "import drawtune.train.stages, drawtune.serve, drawtune.smk, drawtune.data.tiling\n"
            "    import drawtune.eval.merge_tiles, drawtune.vertex.worker\n"
            '    from snakemake.api import SnakemakeApi  # noqa: F401\n    print("ok")\n',
            "from snakemake.cli import main\n"
            "    sys.argv = ['snakemake', '-n', '--cores', '1', '--quiet', 'rules']\n"
            "    main()\n",
        )
    )
    proc = subprocess.run(
        [sys.executable, str(wrapper)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
