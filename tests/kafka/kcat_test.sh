#!/usr/bin/env bash
# kcat against a Kafka endpoint (issue 5's kcat test): metadata (-L), produce with keys (-K:)
# and headers (-H), consume from the beginning and from an offset (-o), consume in a group
# (-G, committed offsets honoured by the next member), and every compression codec
# (-z gzip|snappy|lz4|zstd) produced then consumed back equal. kcat -e exits at the end.
#
#   tests/kafka/kcat_test.sh BOOTSTRAP
#
# Works against any endpoint: sluiced's gateway (tests/kafka/with_sluiced.sh), the librdkafka
# mock cluster (build/tools/sluice-kafka-mock), a real Kafka. Topics get unique names. With
# SLUICE_CLI and SLUICE_DATA_DIR set they are created by `$SLUICE_CLI topic create`; otherwise
# the endpoint must auto-create topics on produce (sluiced --auto-create-topics; the mock does).
# Records whose order matters go to partition 0 (-p 0), so any partition count works.
# Exit 0 when every check passed, 1 at the first failure (with what differed).
set -euo pipefail

if [[ $# -ne 1 ]]; then
  echo "usage: $0 BOOTSTRAP" >&2
  exit 2
fi
BOOTSTRAP=$1
PREFIX="kcat-$$-$(date +%s)"
TIMEOUT=${KCAT_TEST_TIMEOUT:-60}  # seconds per kcat command
KCAT=(timeout "$TIMEOUT" kcat -b "$BOOTSTRAP" -X log_level=3)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

fail() {
  echo "kcat_test: FAIL: $*" >&2
  exit 1
}
pass() { echo "kcat_test: ok - $*"; }

# create_topic NAME PARTITIONS: through the sluice CLI when given one, else auto-created later.
create_topic() {
  if [[ -n "${SLUICE_CLI:-}" && -n "${SLUICE_DATA_DIR:-}" ]]; then
    "$SLUICE_CLI" topic create "$1" --partitions "$2" --data-dir "$SLUICE_DATA_DIR" >/dev/null ||
      fail "sluice topic create $1 --partitions $2"
  fi
}

# expect_equal WHAT EXPECTED_FILE ACTUAL_FILE
expect_equal() {
  if ! diff -u "$2" "$3" >"$WORK/diff"; then
    cat "$WORK/diff" >&2
    fail "$1: output differs (--- expected, +++ got)"
  fi
}

# ---- metadata --------------------------------------------------------------------------------
T=$PREFIX-meta
create_topic "$T" 3
echo "m" | "${KCAT[@]}" -P -t "$T" -p 0 || fail "produce to $T"
"${KCAT[@]}" -L -J -t "$T" >"$WORK/meta.json" || fail "kcat -L -t $T"
python3 - "$WORK/meta.json" "$T" "${SLUICE_CLI:+3}" <<'EOF' || fail "metadata of $T (above)"
import json, sys
md = json.load(open(sys.argv[1]))
topic, want = sys.argv[2], sys.argv[3]
assert md["brokers"], "no brokers in %s" % md
addrs = [b["name"] for b in md["brokers"]]
assert all(":" in a and not a.startswith(("0.0.0.0", ":")) for a in addrs), "unreachable brokers %s" % addrs
ts = [t for t in md["topics"] if t["topic"] == topic]
assert ts, "topic %s missing from %s" % (topic, md["topics"])
t = ts[0]
assert not t.get("error"), "topic error %s" % t.get("error")
parts = t["partitions"]
assert parts and all(p.get("leader", -1) >= 0 for p in parts), "partitions without leader: %s" % parts
if want:
    assert len(parts) == int(want), "want %s partitions, got %d" % (want, len(parts))
EOF
"${KCAT[@]}" -L >"$WORK/meta.txt" || fail "kcat -L (all topics)"
grep -q "topic \"$T\"" "$WORK/meta.txt" || fail "kcat -L does not list $T"
pass "metadata (-L, -L -J -t)"

# ---- keys and headers; from the beginning and from an offset -----------------------------------
T=$PREFIX-keys
create_topic "$T" 2
for i in $(seq 0 9); do echo "key$i:value $i"; done >"$WORK/in.txt"
"${KCAT[@]}" -P -t "$T" -p 0 -K: -H source=kcat -H run="$PREFIX" <"$WORK/in.txt" || fail "produce with keys"
for i in $(seq 0 9); do echo "$i key$i=value $i [source=kcat,run=$PREFIX]"; done >"$WORK/want.txt"
"${KCAT[@]}" -C -t "$T" -p 0 -o beginning -e -f '%o %k=%s [%h]\n' >"$WORK/got.txt" ||
  fail "consume from beginning"
expect_equal "keys and headers from the beginning" "$WORK/want.txt" "$WORK/got.txt"
pass "produce with keys (-K:) and headers (-H), consume from the beginning"

tail -n 4 "$WORK/want.txt" >"$WORK/want6.txt"
"${KCAT[@]}" -C -t "$T" -p 0 -o 6 -e -f '%o %k=%s [%h]\n' >"$WORK/got6.txt" || fail "consume -o 6"
expect_equal "consume from offset 6" "$WORK/want6.txt" "$WORK/got6.txt"
"${KCAT[@]}" -C -t "$T" -p 0 -o -3 -e -f '%o %s\n' >"$WORK/gotm3.txt" || fail "consume -o -3"
printf '7 value 7\n8 value 8\n9 value 9\n' >"$WORK/wantm3.txt"
expect_equal "consume the last 3 (-o -3)" "$WORK/wantm3.txt" "$WORK/gotm3.txt"
# The timestamp: within a minute of now, in milliseconds.
"${KCAT[@]}" -C -t "$T" -p 0 -o 0 -c 1 -e -f '%T\n' >"$WORK/ts.txt" || fail "consume %T"
now_ms=$(($(date +%s%N) / 1000000))
ts=$(cat "$WORK/ts.txt")
[[ "$ts" =~ ^[0-9]+$ ]] && ((ts > now_ms - 600000 && ts <= now_ms + 1000)) ||
  fail "timestamp $ts is not the produce time in ms (now $now_ms)"
pass "consume from an offset (-o 6, -o -3), timestamps in ms"

# ---- a group: records split among nothing else, offsets committed, the next member resumes --------
T=$PREFIX-group
G=$PREFIX-g
create_topic "$T" 3
for i in $(seq 0 29); do echo "k$i:g$i"; done | "${KCAT[@]}" -P -t "$T" -K: || fail "produce for the group"
# -G: balanced consumer; -e: exit when every assigned partition is at its end; offsets are
# committed (auto commit, and on close).
"${KCAT[@]}" -G "$G" -X auto.offset.reset=earliest -e -f '%s\n' "$T" >"$WORK/g1.txt" ||
  fail "kcat -G $G (first member)"
sort -V "$WORK/g1.txt" >"$WORK/g1.sorted"
seq 0 29 | sed 's/^/g/' >"$WORK/gwant.txt"
expect_equal "group consume (first member, all 30 records once)" "$WORK/gwant.txt" "$WORK/g1.sorted"
for i in $(seq 30 34); do echo "k$i:g$i"; done | "${KCAT[@]}" -P -t "$T" -K: || fail "produce more"
"${KCAT[@]}" -G "$G" -X auto.offset.reset=earliest -e -f '%s\n' "$T" >"$WORK/g2.txt" ||
  fail "kcat -G $G (second member)"
sort -V "$WORK/g2.txt" >"$WORK/g2.sorted"
seq 30 34 | sed 's/^/g/' >"$WORK/gwant2.txt"
expect_equal "group resumes from its committed offsets (only the 5 new records)" \
  "$WORK/gwant2.txt" "$WORK/g2.sorted"
pass "consume in a group (-G), resume from committed offsets"

# ---- compression codecs ----------------------------------------------------------------------
for codec in gzip snappy lz4 zstd; do
  T=$PREFIX-$codec
  create_topic "$T" 1
  # Compressible values (librdkafka sends a batch uncompressed when compression does not help).
  for i in $(seq 0 199); do
    printf 'k%d:%s %d\n' "$i" "$codec-$codec-$codec-$codec-$codec-$codec-$codec-$codec" "$i"
  done >"$WORK/c-in.txt"
  "${KCAT[@]}" -P -t "$T" -p 0 -K: -z "$codec" -X linger.ms=50 <"$WORK/c-in.txt" ||
    fail "produce with -z $codec"
  "${KCAT[@]}" -C -t "$T" -p 0 -o beginning -e -f '%k:%s\n' >"$WORK/c-got.txt" ||
    fail "consume the $codec topic"
  expect_equal "-z $codec round trip" "$WORK/c-in.txt" "$WORK/c-got.txt"
  pass "compression $codec: 200 records produced and consumed back equal"
done

echo "kcat_test: all checks passed against $BOOTSTRAP"
