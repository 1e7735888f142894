#!/usr/bin/env bash
# Timings of gpu-doctor on this machine, by hyperfine: anyone can repeat them with `make bench`
# (`make bench CASES=REGEX` for some of them).
# Prints a Markdown table (mean, median, min, max) and keeps hyperfine's JSON in target/bench/.
set -euo pipefail
BIN=$(realpath "${1:-target/release/gpu-doctor}")
ROOT=$(pwd)
OUT=$ROOT/target/bench
mkdir -p "$OUT"

# A project like the seed's: three real virtual environments made by python3 -m venv.
PROJECT=$(mktemp -d)
# The live-result cache of these runs has its own folder: a bench neither reads nor fills the
# user's (~/.cache/gpu-doctor).
GPU_DOCTOR_CACHE_DIR=$(mktemp -d)
export GPU_DOCTOR_CACHE_DIR
trap 'rm -rf "$PROJECT" "$GPU_DOCTOR_CACHE_DIR"' EXIT
for env in .venv .venv310 .venv-gpu; do python3 -m venv --without-pip "$PROJECT/$env"; done
# One of them reaches packages through a .pth line to a shared site-packages folder, as
# environments over NGC containers or a shared torch venv do.
SHARED=$PROJECT/shared/lib/python3/site-packages
mkdir -p "$SHARED/torch"
printf "__version__ = '2.11.0+cu130'\ncuda = '13.0'\n" >"$SHARED/torch/version.py"
echo "$SHARED" >"$(echo "$PROJECT"/.venv-gpu/lib/python3*/site-packages)/shared.pth"

# CASES: a regular expression; only the cases whose names match run (`make bench CASES=hook`).
bench() {
  local name=$1 dir=$2; shift 2
  [[ $name =~ ${CASES:-.} ]] || return 0
  (cd "$dir" && hyperfine -N --warmup 5 --runs "${RUNS:-40}" --ignore-failure \
    --export-json "$OUT/$name.json" "$@" >/dev/null 2>&1)
  python3 - "$OUT/$name.json" "$name" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"][0]
ms = lambda s: f"{s * 1000:.1f}"
print(f"| {sys.argv[2]} | `{r['command'].split('/')[-1]}` | {ms(r['median'])} | {ms(r['mean'])} ± {ms(r['stddev'] or 0)} | {ms(r['min'])} | {ms(r['max'])} |")
PY
}

echo "| case | command | median ms | mean ± σ ms | min ms | max ms |"
echo "|---|---|---:|---:|---:|---:|"
bench version "$ROOT" "$BIN --version"
bench quick "$ROOT" "$BIN check --profile quick"
bench standard "$ROOT" "$BIN check --profile standard"
bench full "$ROOT" "$BIN check --profile full"
bench quick-3-envs "$PROJECT" "$BIN check --profile quick"
bench standard-3-envs "$PROJECT" "$BIN check --profile standard"
bench replay-h100 "$ROOT" "$BIN check --facts fixtures/facts/h100.json"
bench replay-seed-laptop "$ROOT" "$BIN check --facts fixtures/facts/seed-laptop.json"

# The pre-commit hook's exact entry (.pre-commit-hooks.yaml) in the 3-venv project. Warm: a
# standard run has stored each environment's live answer (once the files are older than the
# cache's 2 s racy window) and the hook attaches them. Cold: an empty cache, as on the first
# commit before any standard run.
ENTRY=$(sed -n 's/^  entry: gpu-doctor //p' .pre-commit-hooks.yaml | head -n 1)
sleep 3
(cd "$PROJECT" && "$BIN" check --profile standard >/dev/null 2>&1 || true)
stored=$(find "$GPU_DOCTOR_CACHE_DIR/live" -name '*.json' | wc -l)
[ "$stored" -eq 3 ] || echo "bench/run.sh: only $stored of 3 live answers were cached" >&2
bench hook-warm-3-envs "$PROJECT" "$BIN $ENTRY"
bench hook-cold-3-envs "$PROJECT" --prepare "rm -rf $GPU_DOCTOR_CACHE_DIR/live" "$BIN $ENTRY"
# The same hook through pre-commit itself (`gpu-doctor-system`, a git repository, warm cache):
# what a commit waits for, pre-commit's own start included. Needs tests/support/python-tools.sh.
if TOOLS=$(tests/support/python-tools.sh 2>/dev/null); then
  (cd "$PROJECT" && "$BIN" check --profile standard >/dev/null 2>&1 || true)
  mkdir -p "$PROJECT/.hook-bin" && ln -sf "$BIN" "$PROJECT/.hook-bin/gpu-doctor"
  { echo "repos:"; echo "- repo: local"; echo "  hooks:"
    sed -n '/^- id: gpu-doctor-system$/,/^$/p' .pre-commit-hooks.yaml | sed 's/^/  /'
  } > "$PROJECT/.pre-commit-config.yaml"
  (cd "$PROJECT" && git init -q && git add .pre-commit-config.yaml)
  PRE_COMMIT_HOME="$PROJECT/.pre-commit-home" bench pre-commit-hook-warm-3-envs "$PROJECT" \
    "env PATH=$PROJECT/.hook-bin:$PATH $TOOLS/bin/pre-commit run gpu-doctor-system --all-files"
fi

# The llama.cpp offload proof (docs/offload.md): `check --profile full` in a project holding a real
# CPU-only llama-cpp-python (tests/support/llama-cpp-python.sh, from its cached wheel), against
# `--profile standard` there, so the difference is the proof (reference engine + the environment's
# own llama.cpp on the 2-layer test model); and the test model's write time on a cold cache.
LPROJECT=$(mktemp -d)
trap 'rm -rf "$PROJECT" "$LPROJECT"' EXIT
if tests/support/llama-cpp-python.sh venv "$LPROJECT/.venv" >/dev/null 2>&1; then
  bench standard-llama-cpu "$LPROJECT" "$BIN check --profile standard"
  bench full-llama-cpu "$LPROJECT" "$BIN check --profile full"
  for i in 1 2 3 4 5; do
    (cd "$LPROJECT" && GPU_DOCTOR_CACHE_DIR="$LPROJECT/cold-$i" "$BIN" facts --profile full 2>/dev/null) |
      python3 -c 'import json, sys; m = json.load(sys.stdin)["offload"]["placement_model"]; print("test model (%d bytes of tensors) written in %s ms" % (m["tensor_bytes"], m["write_ms"]))'
  done
fi
