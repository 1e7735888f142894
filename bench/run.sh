#!/usr/bin/env bash
# Timings of gpu-doctor on this machine, by hyperfine: anyone can repeat them with `make bench`.
# Writes a Markdown table per command to stdout and JSON exports to target/bench/.
set -euo pipefail
BIN=${1:-target/release/gpu-doctor}
OUT=target/bench
mkdir -p "$OUT"
run() {
  local name=$1; shift
  hyperfine --warmup 5 --runs "${RUNS:-50}" -N --ignore-failure \
    --export-json "$OUT/$name.json" --export-markdown "$OUT/$name.md" "$@" >/dev/null
  tail -n +3 "$OUT/$name.md"
}
echo "| command | mean ± σ | min | max | relative |"
echo "|:---|---:|---:|---:|---:|"
run version "$BIN --version"
run quick "$BIN check --profile quick"
run standard "$BIN check --profile standard"
run full "$BIN check --profile full"
run facts-replay "$BIN check --facts fixtures/facts/h100.json"
echo
echo "Medians (ms):"
for f in "$OUT"/*.json; do
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"][0]; print(f"  {r[\"command\"]}: median {r[\"median\"]*1000:.2f} ms")' "$f"
done
