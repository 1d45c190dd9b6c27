#!/usr/bin/env bash
# wren --durable vs nsqd v1.3.0 (--mem-queue-size=0 --sync-every=1, and default),
# NSQ's bench_writer (MPUB 200, 2 connections: GOMAXPROCS=2) then bench_reader,
# alternating the four configurations in each round; prints medians.
#   NSQ_BIN=/path/to/nsq/bin WREN=bin/wren docs/bench-durable.sh
# Listens on 127.0.0.1:24150 and :24151.
set -euo pipefail
WREN=${WREN:-bin/wren}
NSQ_BIN=${NSQ_BIN:?set NSQ_BIN to a directory with nsqd, bench_writer and bench_reader}
ROUNDS=${ROUNDS:-3}; SECS=${SECS:-4}; SIZE=${SIZE:-100}
PORT=24150; HPORT=24151
WORK=$(mktemp -d)
BROKER_PID=
cleanup() { [ -n "$BROKER_PID" ] && kill "$BROKER_PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
wait_port() { for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && return 0; sleep 0.05; done; echo "no listen" >&2; exit 1; }
start() { # label cmd...
  local data="$WORK/data.$RANDOM"; mkdir -p "$data"
  "${@:2}" --data-path="$data" --tcp-address=127.0.0.1:$PORT --http-address=127.0.0.1:$HPORT >"$WORK/$1.log" 2>&1 &
  BROKER_PID=$!; wait_port
  curl -sf -X POST "http://127.0.0.1:$HPORT/topic/create?topic=sub_bench" >/dev/null
  curl -sf -X POST "http://127.0.0.1:$HPORT/channel/create?topic=sub_bench&channel=ch" >/dev/null
}
stop() { kill "$BROKER_PID" 2>/dev/null || true; wait "$BROKER_PID" 2>/dev/null || true; BROKER_PID=; }
run() { # label cmd...
  start "$@"
  local pub sub
  pub=$(GOMAXPROCS=2 "$NSQ_BIN/bench_writer" --nsqd-tcp-address=127.0.0.1:$PORT --runfor="${SECS}s" --size="$SIZE" --batch-size=200 2>&1 | grep -o '[0-9.]*ops/s' | tr -d 'ops/' | cut -d. -f1)
  sub=$(GOMAXPROCS=2 "$NSQ_BIN/bench_reader" --nsqd-tcp-address=127.0.0.1:$PORT --runfor="${SECS}s" --size="$SIZE" --channel=ch 2>&1 | grep -o '[0-9.]*ops/s' | tr -d 'ops/' | cut -d. -f1)
  stop
  echo "$pub/$sub"
}
declare -A R
for r in $(seq "$ROUNDS"); do
  R[nsqd_sync1]+="$(run nsqd_sync1 $NSQ_BIN/nsqd --mem-queue-size=0 --sync-every=1) "
  R[wren_durable]+="$(run wren_durable $WREN broker --durable) "
  R[nsqd_default]+="$(run nsqd_default $NSQ_BIN/nsqd) "
  R[wren_sync1]+="$(run wren_sync1 $WREN broker --mem-queue-size=0 --sync-every=1) "
done
med() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for k in nsqd_sync1 wren_sync1 wren_durable nsqd_default; do
  pm=$(echo ${R[$k]} | tr ' ' '\n' | cut -d/ -f1 | tr '\n' ' ' | med)
  sm=$(echo ${R[$k]} | tr ' ' '\n' | cut -d/ -f2 | tr '\n' ' ' | med)
  echo "$k: runs (pub/sub) ${R[$k]} median publish $pm msg/s, consume $sm msg/s"
done
