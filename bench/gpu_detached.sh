#!/usr/bin/env bash
# Run a GPU session's bench jobs detached from the device tool's 10-minute commands, so that one
# machine start serves up to 28 minutes of work and nothing waits for the next call:
#
#   first call:   bash bench/gpu_detached.sh start bench/sessions/<jobs>.sh; bash bench/gpu_detached.sh poll 540
#   later calls:  bash bench/gpu_detached.sh poll 560
#
# `start` installs the carried wheels (.whl) into /tmp/site, copies the working tree to $SRC
# (/tmp/src) and runs the jobs file there with bash in a new process session (setsid: the device
# tool ends a command's other processes when it returns). The jobs run from that copy because
# every device call writes the working tree afresh, and a job that imported a module at that
# moment found it missing (run O of 2026-12-03 died so in calibrate_scores); the copy's
# bench/runs (the runs' folders) is kept from one `start` to the next on a warm machine. The
# jobs file writes its results and logs under $R (/tmp/res) and appends lines to $R/status with
# `st`; `st done` ends the waiting. `poll N` waits up to N seconds (less once the
# status says done), prints the status and the last progress lines of each log, and copies the
# results (*.json) under $R and the tails of its logs (*.log) with the runs' scores so far (in
# logs.tar.gz) to $OUT. The machine must not sit idle for 30 s between calls, or it is given
# back and the jobs end with it: call `poll` again at once.
set -uo pipefail
R=${R:-/tmp/res}
SRC=${SRC:-/tmp/src}
case "${1:-}" in
start)
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl >/dev/null 2>&1
  rm -rf "$R" && mkdir -p "$R" "$SRC/bench"
  find "$SRC" -mindepth 1 -maxdepth 1 ! -name bench -exec rm -rf {} +
  find "$SRC/bench" -mindepth 1 -maxdepth 1 ! -name runs -exec rm -rf {} +
  tar --exclude=./bench/runs --exclude=./.whl -cf - . | tar -xf - -C "$SRC"
  R=$R ROOT=$SRC setsid nohup bash -c '
    export PYTHONPATH=$ROOT:/tmp/site PATH=/tmp/site/bin:$PATH PYTHONUNBUFFERED=1
    st() { echo "$(date +%T) $*" >> "$R/status"; }
    export -f st
    cd "$ROOT" && st start && source "$0"' "$2" > "$R/driver.log" 2>&1 < /dev/null &
  sleep 2
  ;;
poll)
  end=$((SECONDS + ${2:-540}))
  while [ $SECONDS -lt $end ] && ! grep -q " done$" "$R/status" 2>/dev/null; do sleep 5; done
  cat "$R/status" 2>/dev/null
  cd "$SRC" 2>/dev/null || true
  # 8 files come back: the results (up to 7) and one archive with the last 3000 lines of
  # every log under $R, with the scores, the matched test boxes and the test truth
  find "$R" -name '*.json' | sort | head -n 7 | xargs -r cp -t "$OUT/"
  mkdir -p /tmp/logtails && rm -f /tmp/logtails/*
  for f in "$R"/*.log; do [ -f "$f" ] && tail -n 3000 "$f" > "/tmp/logtails/$(basename "$f")"; done
  # and every score the learning-proof runs have written so far, with the matched test boxes
  # behind it (bench/runs/<run>/results/metrics/<model>/test.json and test.details.jsonl as
  # <run>-<model>-test.json and -test.details.jsonl), and each run's test truth
  # (<run>-test.coco.json): a run the lease ends before its result still shows what it scored,
  # and drawtune.eval.confusion can say on this machine which class each box was taken for
  for f in bench/runs/*/results/metrics/*/test.json bench/runs/*/results/metrics/*/test.details.jsonl; do
    [ -f "$f" ] || continue
    run=${f#bench/runs/} && run=${run%%/*} && model=$(basename "$(dirname "$f")")
    cp "$f" "/tmp/logtails/$run-$model-$(basename "$f")"
  done
  for f in bench/runs/*/results/splits/test.coco.json; do
    [ -f "$f" ] || continue
    run=${f#bench/runs/} && run=${run%%/*}
    cp "$f" "/tmp/logtails/$run-test.coco.json"
  done
  tar -czf "$OUT/logs.tar.gz" -C /tmp/logtails .
  for f in "$R"/*.log; do
    [ -f "$f" ] || continue
    echo "== $(basename "$f")"
    grep -a -i "map50\|error\|Traceback\|steps (.*%) done\|rc=" "$f" | tail -n 4
  done
  nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader 2>/dev/null || true
  ;;
*)
  echo "usage: $0 start JOBS.sh | poll SECONDS" >&2
  exit 2
  ;;
esac
