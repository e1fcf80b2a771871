#!/usr/bin/env bash
# Runs one Kafka client test against a sluiced of its own (the ctest wrapper of tests/kafka/):
# a fresh data directory under /dev/shm, a free port, `sluiced --listen 127.0.0.1:PORT
# --auto-create-topics`, waits until the port accepts, runs the test, then stops sluiced
# (SIGTERM, SIGKILL after 10 s) and removes the directory.
#
#   SLUICED=... SLUICE_CLI=... with_sluiced.sh [--topic NAME:PARTITIONS]... -- COMMAND ARGS...
#
# --topic creates the topic with `$SLUICE_CLI topic create` before the test. In ARGS, {bootstrap}
# becomes 127.0.0.1:PORT; the test's environment also has BOOTSTRAP, SLUICE_DATA_DIR, SLUICE_CLI
# and SLUICED_PID. The exit status is the test's (1 if sluiced does not come up, or dies during
# the test); sluiced's log is printed when the test fails.
set -uo pipefail

: "${SLUICED:?set SLUICED to the sluiced executable}"
: "${SLUICE_CLI:?set SLUICE_CLI to the sluice executable}"
topics=()
while [[ $# -gt 0 && $1 != -- ]]; do
  case $1 in
    --topic) topics+=("$2"); shift 2 ;;
    *) echo "with_sluiced: unknown option $1" >&2; exit 2 ;;
  esac
done
[[ $# -gt 1 && $1 == -- ]] || { echo "usage: $0 [--topic NAME:PARTITIONS]... -- COMMAND ARGS..." >&2; exit 2; }
shift

# Data directories of earlier runs that were killed before their cleanup (a SIGKILLed ctest):
# those whose broker.lock names a pid that is gone. A directory whose sluiced has not yet
# written its lock is another run's, starting: left alone.
for old in /dev/shm/sluice-kafka-test.*/; do
  [[ -d $old ]] || continue
  old=${old%/}
  pid=$(head -c 32 "$old/broker.lock" 2>/dev/null | tr -dc 0-9)
  if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null && [[ ! -d /proc/$pid ]]; then
    rm -rf "$old" "$old.log"
  fi
done

DIR=$(mktemp -d /dev/shm/sluice-kafka-test.XXXXXX)
LOG=$DIR.log
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$SLUICED" --data-dir "$DIR" --listen "127.0.0.1:$PORT" --auto-create-topics >"$LOG" 2>&1 &
PID=$!
rc=1
cleanup() {
  if kill -0 "$PID" 2>/dev/null; then
    kill -TERM "$PID" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$PID" 2>/dev/null
  fi
  wait "$PID" 2>/dev/null
  if [[ $rc -ne 0 ]]; then
    echo "---- sluiced log ($LOG)" >&2
    cat "$LOG" >&2
  fi
  rm -rf "$DIR" "$LOG"
}
trap cleanup EXIT

up=0
for _ in $(seq 200); do  # 20 s
  if ! kill -0 "$PID" 2>/dev/null; then
    echo "with_sluiced: sluiced exited before accepting on 127.0.0.1:$PORT" >&2
    exit 1
  fi
  if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then up=1; break; fi
  sleep 0.1
done
if [[ $up -ne 1 ]]; then
  echo "with_sluiced: sluiced does not accept on 127.0.0.1:$PORT after 20 s" >&2
  exit 1
fi

for t in "${topics[@]}"; do
  if ! "$SLUICE_CLI" topic create "${t%%:*}" --partitions "${t##*:}" --data-dir "$DIR" >/dev/null; then
    echo "with_sluiced: sluice topic create ${t%%:*} --partitions ${t##*:} failed" >&2
    exit 1
  fi
done

export BOOTSTRAP="127.0.0.1:$PORT" SLUICE_DATA_DIR="$DIR" SLUICE_CLI SLUICED_PID="$PID"
args=()
for a in "$@"; do args+=("${a//\{bootstrap\}/$BOOTSTRAP}"); done
"${args[@]}"
rc=$?
if [[ $rc -eq 0 ]] && ! kill -0 "$PID" 2>/dev/null; then
  echo "with_sluiced: sluiced died during the test" >&2
  rc=1
fi
exit $rc
