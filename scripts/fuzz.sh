#!/usr/bin/env bash
# Runs one libFuzzer target for SECONDS (default 60), from its committed seed
# corpus (fuzz/corpus/TARGET) and dictionary (fuzz/dict/TARGET.dict). New
# inputs go to build/fuzz/corpus/TARGET; a crash is written to
# build/fuzz/crashes/ and makes the script fail.
#   scripts/fuzz.sh TARGET [SECONDS]     TARGET: websocket_frame json object_id http_request sql import_check history_file
#                                        replica_records mcp
#   scripts/fuzz.sh all [SECONDS]        each target in turn
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:?usage: scripts/fuzz.sh TARGET|all [SECONDS]}
seconds=${2:-60}
targets=(websocket_frame json object_id http_request sql import_check history_file replica_records mcp)
scripts/deps.sh clang libclang-rt-14-dev
cmake --preset fuzz >/dev/null
if [[ $target == all ]]; then
  # The fuzz targets only: the rest (the runtime's coroutines) trips a clang 14
  # code-generation bug under these sanitizers.
  cmake --build build/fuzz --target "${targets[@]/%/_fuzz}"
  for t in "${targets[@]}"; do "$0" "$t" "$seconds"; done
  exit 0
fi
cmake --build build/fuzz --target "${target}_fuzz"
work=build/fuzz/corpus/$target
mkdir -p "$work" build/fuzz/crashes
dict=()
[[ -f fuzz/dict/$target.dict ]] && dict=(-dict="fuzz/dict/$target.dict")
echo "fuzz: $target for ${seconds}s"
build/fuzz/fuzz/"${target}_fuzz" -max_total_time="$seconds" \
  -print_final_stats=1 -artifact_prefix=build/fuzz/crashes/"$target"- "${dict[@]}" \
  "$work" "fuzz/corpus/$target" 2>&1 | grep -E '^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss|==[0-9]+==|SUMMARY|Done)' || true
# libFuzzer's exit status is lost in the pipe: a crash leaves an artifact.
if compgen -G "build/fuzz/crashes/$target-*" >/dev/null; then
  echo "fuzz: $target found a crash: $(ls build/fuzz/crashes/$target-*)"
  exit 1
fi
