#!/usr/bin/env bash
# Mixed local/Kafka test (issue 5's "one truth"), against sluiced's gateway only: the librdkafka
# mock cluster shares no data with local Sluice processes.
#   1. local `sluice produce` (keys, headers) -> kcat consumes the same offsets, keys, values,
#      headers and timestamps (ms) that `sluice consume --format` shows;
#   2. kcat produce (keys, headers, explicit timestamps) -> `sluice consume --format` shows the
#      same partition, offsets, keys, values, headers and timestamps.
#
#   SLUICE_CLI=... SLUICE_DATA_DIR=... tests/kafka/mixed_test.sh BOOTSTRAP
#
# (tests/kafka/with_sluiced.sh sets both.) Exit 0 when both directions agree, 1 otherwise.
set -euo pipefail

if [[ $# -ne 1 ]]; then
  echo "usage: SLUICE_CLI=... SLUICE_DATA_DIR=... $0 BOOTSTRAP" >&2
  exit 2
fi
BOOTSTRAP=$1
: "${SLUICE_CLI:?set SLUICE_CLI to the sluice executable}"
: "${SLUICE_DATA_DIR:?set SLUICE_DATA_DIR to the data directory of sluiced}"
KCAT=(timeout 60 kcat -b "$BOOTSTRAP" -X log_level=3)
SLUICE=("$SLUICE_CLI")
PREFIX="mixed-$$-$(date +%s)"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
fail() {
  echo "mixed_test: FAIL: $*" >&2
  exit 1
}
expect_equal() {
  if ! diff -u "$2" "$3" >"$WORK/diff"; then
    cat "$WORK/diff" >&2
    fail "$1 (--- sluice consume, +++ kcat)"
  fi
}
# The same line format on both sides: partition/offset key=value [headers] timestamp(ms).
SLUICE_FMT='%p/%o %k=%s [%h] %T\n'
KCAT_FMT='%p/%o %k=%s [%h] %T\n'

# ---- 1. local producer -> Kafka consumer -----------------------------------------------------
T=$PREFIX-local
"${SLUICE[@]}" topic create "$T" --partitions 3 --data-dir "$SLUICE_DATA_DIR" >/dev/null ||
  fail "sluice topic create $T"
for i in $(seq 0 29); do echo "key$i:local value $i"; done |
  "${SLUICE[@]}" produce "$T" -K : -H origin=local -H n=1 --data-dir "$SLUICE_DATA_DIR" ||
  fail "sluice produce"
"${SLUICE[@]}" consume "$T" -e --from beginning --format "$SLUICE_FMT" \
  --data-dir "$SLUICE_DATA_DIR" | sort -V >"$WORK/local.txt" || fail "sluice consume $T"
[[ $(wc -l <"$WORK/local.txt") -eq 30 ]] || fail "sluice consume shows $(wc -l <"$WORK/local.txt") of 30 records"
"${KCAT[@]}" -C -t "$T" -o beginning -e -f "$KCAT_FMT" 2>/dev/null | sort -V >"$WORK/kcat.txt" ||
  fail "kcat -C $T"
expect_equal "local produce -> kcat consume: same partitions, offsets, keys, values, headers, timestamps" \
  "$WORK/local.txt" "$WORK/kcat.txt"
echo "mixed_test: ok - local produce -> Kafka consume (30 records, 3 partitions)"

# ---- 2. Kafka producer -> local consumer -----------------------------------------------------
T=$PREFIX-kafka
"${SLUICE[@]}" topic create "$T" --partitions 2 --data-dir "$SLUICE_DATA_DIR" >/dev/null ||
  fail "sluice topic create $T"
for i in $(seq 0 19); do echo "kkey$i:kafka value $i"; done >"$WORK/in.txt"
"${KCAT[@]}" -P -t "$T" -p 1 -K: -H origin=kcat -H n=2 <"$WORK/in.txt" || fail "kcat -P $T"
"${KCAT[@]}" -C -t "$T" -o beginning -e -f "$KCAT_FMT" 2>/dev/null | sort -V >"$WORK/kcat2.txt" ||
  fail "kcat -C $T"
"${SLUICE[@]}" consume "$T" -e --from beginning --format "$SLUICE_FMT" \
  --data-dir "$SLUICE_DATA_DIR" | sort -V >"$WORK/local2.txt" || fail "sluice consume $T"
[[ $(wc -l <"$WORK/local2.txt") -eq 20 ]] || fail "sluice consume shows $(wc -l <"$WORK/local2.txt") of 20 records"
for i in $(seq 0 19); do echo "1/$i kkey$i=kafka value $i [origin=kcat,n=2]"; done >"$WORK/want2.txt"
sed 's/ [0-9]*$//' "$WORK/local2.txt" >"$WORK/local2-nots.txt"
expect_equal "kcat produce -> sluice consume: partition 1, offsets 0..19, keys, values, headers" \
  "$WORK/want2.txt" "$WORK/local2-nots.txt"
expect_equal "kcat produce -> sluice consume: the same timestamps as kcat reads back" \
  "$WORK/local2.txt" "$WORK/kcat2.txt"
now_ms=$(($(date +%s%N) / 1000000))
while read -r ts; do
  ((ts > now_ms - 600000 && ts <= now_ms + 1000)) || fail "timestamp $ts is not the produce time in ms"
done < <(awk '{print $NF}' "$WORK/local2.txt")
echo "mixed_test: ok - Kafka produce -> local consume (20 records, partition 1)"
echo "mixed_test: all checks passed against $BOOTSTRAP"
