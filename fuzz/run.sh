#!/usr/bin/env bash
# Runs cargo-fuzz targets for a fixed time each and prints executions and findings per target.
#
#   fuzz/run.sh SECONDS [TARGET...]      (default: every target in fuzz/Cargo.toml)
#
# Needs a nightly toolchain (`cargo +nightly`) and cargo-fuzz. Each target fuzzes its growing
# corpus `fuzz/corpus/<target>` (not in git) seeded from `fuzz/seeds/<target>` (in git) when
# that exists. A crash leaves its input in `fuzz/artifacts/<target>/`, and the script exits 1.
set -uo pipefail
cd "$(dirname "$0")/.."

secs=${1:?usage: fuzz/run.sh SECONDS [TARGET...]}
shift
if [ $# -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^atgw-fuzz$')
fi

cargo +nightly fuzz build || exit 1

failed=0
summary=()
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t"
  corpora=("fuzz/corpus/$t")
  [ -d "fuzz/seeds/$t" ] && corpora+=("fuzz/seeds/$t")
  log=$(mktemp)
  cargo +nightly fuzz run "$t" "${corpora[@]}" -- -max_total_time="$secs" -print_final_stats=1 >"$log" 2>&1
  status=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
  if [ "$status" -ne 0 ]; then
    failed=1
    tail -40 "$log"
    summary+=("$t: FAILED (exit $status) after ${execs:-?} executions; see fuzz/artifacts/$t/")
  else
    summary+=("$t: ${execs:-?} executions in ${secs}s, ${cov:-cov: ?}, no crash")
  fi
  rm -f "$log"
done

echo "fuzz summary (${secs}s per target):"
printf '  %s\n' "${summary[@]}"
exit "$failed"
