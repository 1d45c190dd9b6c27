#!/usr/bin/env bash
# Measures wren against nsqd on this machine, alternating the two brokers
# in each round, with NSQ's own bench_writer and bench_reader and with
# `wren bench`. Prints a markdown table of medians and ratios.
#
#   NSQ_BIN=/path/to/nsq/binaries WREN=bin/wren docs/bench-compare.sh
#
# NSQ_BIN must hold nsqd, bench_writer and bench_reader, built from NSQ's
# own repository outside this one. Everything listens on 127.0.0.1:4150
# and 127.0.0.1:4151 (bench_writer and bench_reader's defaults), so
# nothing else may use those ports while it runs.
set -euo pipefail

WREN=${WREN:-bin/wren}
NSQ_BIN=${NSQ_BIN:?set NSQ_BIN to a directory with nsqd, bench_writer and bench_reader}
ROUNDS=${ROUNDS:-3}
SECS=${SECS:-4}
SIZE=${SIZE:-100}
WORK=$(mktemp -d)
trap 'pkill -P $$ 2>/dev/null || true; rm -rf "$WORK"' EXIT

broker_cmd() { # name -> command line
	case $1 in
	nsqd) echo "$NSQ_BIN/nsqd" ;;
	wren) echo "$WREN broker" ;;
	esac
}

wait_port() {
	for _ in $(seq 100); do
		(exec 3<>/dev/tcp/127.0.0.1/4150) 2>/dev/null && return 0
		sleep 0.05
	done
	echo "broker did not start listening" >&2
	exit 1
}

# start_broker NAME MEMQ: starts it with a fresh data path and the bench
# topic and channel created, as NSQ's bench.sh does.
start_broker() {
	local data="$WORK/data.$1.$RANDOM"
	mkdir -p "$data"
	$(broker_cmd "$1") --mem-queue-size="$2" --data-path="$data" \
		--tcp-address=127.0.0.1:4150 --http-address=127.0.0.1:4151 >"$WORK/$1.log" 2>&1 &
	BROKER_PID=$!
	wait_port
	curl -sf -X POST 'http://127.0.0.1:4151/topic/create?topic=sub_bench' >/dev/null
	curl -sf -X POST 'http://127.0.0.1:4151/channel/create?topic=sub_bench&channel=ch' >/dev/null
}

stop_broker() {
	kill "$BROKER_PID" 2>/dev/null || true
	wait "$BROKER_PID" 2>/dev/null || true
}

ops() { grep -o '[0-9.]*ops/s' | tr -d 'ops/' | cut -d. -f1; }

# throughput NAME MEMQ BATCH -> "pub sub" in msg/s (sub is - for BATCH 1)
throughput() {
	start_broker "$1" "$2"
	local pub sub=-
	pub=$("$NSQ_BIN/bench_writer" --runfor="${SECS}s" --size="$SIZE" --batch-size="$3" 2>&1 | ops)
	if [ "$3" -gt 1 ]; then
		sub=$("$NSQ_BIN/bench_reader" --runfor="${SECS}s" --size="$SIZE" --channel=ch 2>&1 | ops)
	fi
	stop_broker
	echo "$pub $sub"
}

sink() { # BATCH -> msg/s bench_writer gets from a broker that stores nothing
	$WREN bench sink --tcp-address 127.0.0.1:4150 >"$WORK/sink.log" 2>&1 &
	local pid=$!
	wait_port
	"$NSQ_BIN/bench_writer" --runfor="${SECS}s" --size="$SIZE" --batch-size="$1" 2>&1 | ops
	kill "$pid"
	wait "$pid" 2>/dev/null || true
}

latency() { # NAME -> p99 publish->consume latency at 1k msg/s, go-nsq defaults
	start_broker "$1" 10000
	$WREN bench latency --addr 127.0.0.1:4150 --topic lat --channel ch --rate 1000 \
		--duration "${SECS}s" --json | sed -n 's/.*"p99_us":\([0-9.]*\).*/\1/p'
	stop_broker
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a/b; else print "-"}'; }

echo "| configuration | nsqd publish | wren publish | ratio | nsqd consume | wren consume | ratio |"
echo "|---|---|---|---|---|---|---|"
for memq in 10000 1000000 0 10000000; do
	for who in nsqd wren; do : >"$WORK/$who.pub"; : >"$WORK/$who.sub"; done
	for _ in $(seq "$ROUNDS"); do
		for who in nsqd wren; do
			read -r pub sub < <(throughput "$who" "$memq" 200)
			echo "$pub" >>"$WORK/$who.pub"
			echo "$sub" >>"$WORK/$who.sub"
		done
	done
	np=$(median <"$WORK/nsqd.pub"); wp=$(median <"$WORK/wren.pub")
	ns=$(median <"$WORK/nsqd.sub"); ws=$(median <"$WORK/wren.sub")
	echo "| --mem-queue-size=$memq, MPUB 200 | $np | $wp | $(ratio "$wp" "$np")x | $ns | $ws | $(ratio "$ws" "$ns")x |"
done

for who in nsqd wren; do : >"$WORK/$who.pub1"; done
for _ in $(seq "$ROUNDS"); do
	for who in nsqd wren; do
		read -r pub _ < <(throughput "$who" 10000 1)
		echo "$pub" >>"$WORK/$who.pub1"
	done
done
np=$(median <"$WORK/nsqd.pub1"); wp=$(median <"$WORK/wren.pub1")
echo "| one message per round trip (--batch-size=1) | $np | $wp | $(ratio "$wp" "$np")x | | | |"

s200=$(for _ in $(seq "$ROUNDS"); do sink 200; done | median)
s1=$(for _ in $(seq "$ROUNDS"); do sink 1; done | median)
echo
echo "Stand-in broker that stores nothing (wren bench sink): MPUB 200 $s200 msg/s, one per round trip $s1 msg/s."

for who in nsqd wren; do : >"$WORK/$who.lat"; done
for _ in $(seq "$ROUNDS"); do
	for who in nsqd wren; do latency "$who" >>"$WORK/$who.lat"; done
done
echo "p99 publish->consume latency at 1k msg/s (wren bench latency, RDY 100 like go-nsq): nsqd $(median <"$WORK/nsqd.lat") us, wren $(median <"$WORK/wren.lat") us."
