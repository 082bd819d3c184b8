#!/usr/bin/env bash
# Prints the test run's totals as one plain line ("N passed, N failed, N skipped") from a TRX file.
trx=${1:?trx file}
[ -f "$trx" ] || { echo "test-summary: $trx not found (the test run did not finish)"; exit 0; }
counters=$(grep -o '<Counters [^>]*>' "$trx" | head -n 1)
get() { sed -n "s/.* $1=\"\([0-9]*\)\".*/\1/p" <<<"$counters"; }
passed=$(get passed); failed=$(get failed); total=$(get total); executed=$(get executed)
skipped=$(( ${total:-0} - ${executed:-0} ))
echo "tests: ${passed:-0} passed, ${failed:-0} failed, ${skipped} skipped"
