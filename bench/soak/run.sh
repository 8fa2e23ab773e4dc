#!/usr/bin/env bash
# The soak: the crash test's mixed load of every durable example (counters,
# KV batches, bank transfers, SQL inserts, alarms, new objects, a chat room)
# with KILLS random SIGKILLs, then the same load with CUTS simulated power cuts
# (half exact, half torn; see tests/support/power_cut_preload.cc). After each:
# every acknowledged write is read back, bank totals summed, every acknowledged
# alarm must fire, every database passes integrity_check.
#
#   bench/soak/run.sh                 # 100 kills, 100 cuts (about 10 minutes)
#   KILLS=300 CUTS=0 bench/soak/run.sh
#
# Builds the ci preset (the test binaries live there). Writes the summary to
# bench/results/soak.md. Not a test: nothing here runs in CI.
set -euo pipefail
cd "$(dirname "$0")/../.."
kills=${KILLS:-100}
cuts=${CUTS:-100}
scripts/deps.sh >/dev/null
cmake --preset ci >/dev/null
cmake --build build/ci --target crash_test power_cut_test dobj-examples >/dev/null
out=bench/results/soak.md
log=$(mktemp)
{
  echo "# Soak ($(date -u +%F), $(git rev-parse --short HEAD), $(nproc) cores)"
  echo
  echo "| run | result | summary |"
  echo "|---|---|---|"
} > "$out"
run() {  # name, env assignment, binary, filter
  local name=$1 assign=$2 bin=$3 filter=$4 start rc summary
  start=$(date +%s)
  set +e
  env "$assign" "$bin" --gtest_filter="$filter" > "$log" 2>&1
  rc=$?
  set -e
  summary=$(grep -E '^(crash test|power cuts):' "$log" | tail -1)
  local lost
  lost=$(grep -c 'Failure' "$log" || true)
  echo "$name: rc=$rc, $(( $(date +%s) - start )) s, $summary, $lost failures" >&2
  echo "| $name | $([[ $rc == 0 ]] && echo pass || echo "FAIL ($lost)") | $summary, $(( $(date +%s) - start )) s |" >> "$out"
  [[ $rc == 0 ]] || { grep -A3 Failure "$log" | head -40 >&2; }
  return $rc
}
status=0
if (( kills > 0 )); then
  run "$kills SIGKILLs" "DOBJ_KILLS=$kills" build/ci/tests/integration/crash_test '*' || status=1
fi
if (( cuts > 0 )); then
  run "$cuts power cuts" "DOBJ_POWER_CUTS=$cuts" build/ci/tests/integration/power_cut_test \
    '*Survive*' || status=1
fi
rm -f "$log"
cat "$out"
exit $status
