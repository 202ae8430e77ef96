#!/usr/bin/env bash
# Run every libFuzzer target in DIR for SECONDS each, seeded from
# tests/fuzz/corpus/<target>/ (copied, so the checked-in seeds stay small).
set -euo pipefail
dir=${1:?usage: run.sh FUZZ_BIN_DIR [SECONDS]}
secs=${2:-20}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
status=0
for f in "$dir"/fuzz_*; do
  [ -x "$f" ] || continue
  name=$(basename "$f")
  mkdir -p "$work/$name"
  if [ -d "$here/corpus/$name" ]; then cp -r "$here/corpus/$name/." "$work/$name/"; fi
  printf '  %-20s ' "$name"
  if "$f" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
       -artifact_prefix="$work/" "$work/$name" >"$work/$name.log" 2>&1; then
    grep -E '^stat::number_of_executed_units' "$work/$name.log" | awk '{print $2 " runs, ok"}'
  else
    echo "FAILED"; tail -40 "$work/$name.log"
    for a in "$work"/crash-* "$work"/leak-* "$work"/timeout-*; do
      [ -e "$a" ] && { echo "artifact: $(basename "$a"): $(od -c "$a" | head -5)"; cp "$a" . || true; }
    done
    status=1
  fi
done
exit $status
