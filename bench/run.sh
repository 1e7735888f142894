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

# The same project with one environment reaching its packages the way NGC containers, conda base
# + pip and `venv --system-site-packages` set-ups do: a `.pth` line in .venv-gpu naming another
# environment's site-packages (outside the project), which holds torch 2.11.0+cu130 as recorded
# on the GPU machine (fixtures/site-packages), and .venv a CPU-only llama-cpp-python.
PTH_PROJECT=$(mktemp -d)
trap 'rm -rf "$PROJECT" "$GPU_DOCTOR_CACHE_DIR" "$PTH_PROJECT"' EXIT
mkdir -p "$PTH_PROJECT/proj"
for env in .venv .venv310 .venv-gpu; do python3 -m venv --without-pip "$PTH_PROJECT/proj/$env"; done
python3 -m venv --without-pip "$PTH_PROJECT/torch-base"
site_of() { echo "$1"/lib/python3*/site-packages; }
cp -r "$ROOT"/fixtures/site-packages/torch-2.11.0-cu130-linux/. "$(site_of "$PTH_PROJECT/torch-base")/"
cp -r "$ROOT"/fixtures/site-packages/llama-cpp-python-0.3.36-cpu-linux/. "$(site_of "$PTH_PROJECT/proj/.venv")/"
site_of "$PTH_PROJECT/torch-base" > "$(site_of "$PTH_PROJECT/proj/.venv-gpu")/torch-base.pth"

# CASES: a regular expression; only the cases whose names match run (`make bench CASES=hook`).
# BASELINE: another gpu-doctor binary (say, the previous commit's release build); each case then
# times both in the same hyperfine run, interleaved, and prints the baseline's row and the ratio.
bench() {
  local name=$1 dir=$2; shift 2
  [[ $name =~ ${CASES:-.} ]] || return 0
  local commands=("$@")
  if [ -n "${BASELINE:-}" ]; then
    commands=()
    for c in "$@"; do commands+=("$c" "${c//$BIN/$(realpath "$BASELINE")}"); done
  fi
  (cd "$dir" && hyperfine -N --warmup 5 --runs "${RUNS:-40}" --ignore-failure \
    --export-json "$OUT/$name.json" "${commands[@]}" >/dev/null 2>&1)
  python3 - "$OUT/$name.json" "$name" <<'PY'
import json, sys
results = json.load(open(sys.argv[1]))["results"]
ms = lambda s: f"{s * 1000:.1f}"
for label, r in zip([sys.argv[2], sys.argv[2] + " (baseline)"], results):
    print(f"| {label} | `{r['command'].split('/')[-1]}` | {ms(r['median'])} | {ms(r['mean'])} ± {ms(r['stddev'] or 0)} | {ms(r['min'])} | {ms(r['max'])} |")
if len(results) == 2:
    print(f"| {sys.argv[2]}: this / baseline | | {results[0]['median'] / results[1]['median']:.3f} | | | |")
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
bench quick-3-envs-pth "$PTH_PROJECT/proj" "$BIN check --profile quick"
bench replay-h100 "$ROOT" "$BIN check --facts fixtures/facts/h100.json"
bench replay-seed-laptop "$ROOT" "$BIN check --facts fixtures/facts/seed-laptop.json"

# A repository whose configuration names 200 rule files, each within every bound of one file
# (ten rules of two nested loops over literal lists of 440 and 410 items; issue 13): the run's
# total budget refuses the second file (exit 2) before anything is evaluated.
RULES_PROJECT=$(mktemp -d)
trap 'rm -rf "$PROJECT" "$GPU_DOCTOR_CACHE_DIR" "$PTH_PROJECT" "$RULES_PROJECT"' EXIT
python3 - "$RULES_PROJECT" <<'PY'
import sys, pathlib
root = pathlib.Path(sys.argv[1])
lst = lambda n: "[" + ",".join(["0"] * n) + "]"
when = f"{lst(440)}.exists(a, {lst(410)}.exists(b, a == 1))"
names = []
for f in range(200):
    rules = "".join(
        f'[[rule]]\nid = "f{f}-r{r}"\ncategory = "host"\nseverity = "warn"\nscope = "host"\n'
        f'since = "0.1.0"\nwhen = \'\'\'{when}\'\'\'\ntitle = "t"\nexplain = "e"\nfix.none = "n"\n'
        for r in range(10))
    names.append(f"r{f:03}.toml")
    (root / names[-1]).write_text(rules)
(root / "gpu-doctor.toml").write_text("rules = [" + ", ".join(f'"{n}"' for n in names) + "]\n")
PY
bench rules-200-files "$RULES_PROJECT" "$BIN check --profile quick --facts $ROOT/fixtures/facts/h100.json"

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
trap 'rm -rf "$PROJECT" "$GPU_DOCTOR_CACHE_DIR" "$PTH_PROJECT" "$RULES_PROJECT" "$LPROJECT"' EXIT
if tests/support/llama-cpp-python.sh venv "$LPROJECT/.venv" >/dev/null 2>&1; then
  bench standard-llama-cpu "$LPROJECT" "$BIN check --profile standard"
  bench full-llama-cpu "$LPROJECT" "$BIN check --profile full"
  for i in 1 2 3 4 5; do
    (cd "$LPROJECT" && GPU_DOCTOR_CACHE_DIR="$LPROJECT/cold-$i" "$BIN" facts --profile full 2>/dev/null) |
      python3 -c 'import json, sys; m = json.load(sys.stdin)["offload"]["placement_model"]; print("test model (%d bytes of tensors) written in %s ms" % (m["tensor_bytes"], m["write_ms"]))'
  done
fi
