#!/bin/bash
# syscalls.sh counts the system calls per request of each proxy in the
# sidecar pair bench: it runs one round (20 s per target) and, while each
# proxy process is busy, counts its calls for 5 s with perf's syscall
# tracepoints (no ptrace, so the counts are those of an undisturbed run).
# Needs perf and root; run from test/sidecar after `make build`:
#   ./syscalls.sh [bin dir, default ../../bin]
# Requests are (write + writev) / 2: each proxy writes once per request
# to each side.
set -euo pipefail
bin=$(realpath "${1:-../../bin}")
out=$(mktemp -d)
go test -c -o "$out/sidecar.test" .
SWITCHYARD_BIN=$bin SWITCHYARD_BENCH=1 SWITCHYARD_BENCH_SECONDS=20 SWITCHYARD_BENCH_ROUNDS=1 \
  "$out/sidecar.test" -test.run TestBenchmarkSidecarPair -test.timeout 20m > "$out/bench.log" 2>&1 &
bench=$!
events=syscalls:sys_enter_read,syscalls:sys_enter_write,syscalls:sys_enter_writev,syscalls:sys_enter_recvfrom
events=$events,syscalls:sys_enter_epoll_pwait,syscalls:sys_enter_epoll_wait,raw_syscalls:sys_enter,context-switches
declare -A counted
while kill -0 $bench 2>/dev/null; do
  sleep 1
  for pid in $(pgrep -x sidecar) $(pgrep -x nginx); do
    [ -n "${counted[$pid]:-}" ] && continue
    t1=$(awk '{print $14+$15}' /proc/$pid/stat 2>/dev/null) || continue
    sleep 0.3
    t2=$(awk '{print $14+$15}' /proc/$pid/stat 2>/dev/null) || continue
    if [ $((t2 - t1)) -ge 2 ]; then # busy: its target's turn
      counted[$pid]=1
      name=$(tr '\0' ' ' < /proc/$pid/cmdline | cut -c1-60)
      (perf stat -e $events -e syscalls:sys_exit_read --filter 'ret == -11' -p $pid -o "$out/$pid.perf" -- sleep 5 &&
        echo "$name" >> "$out/$pid.perf") &
    fi
  done
done
wait
for f in "$out"/*.perf; do
  awk '
    $2=="syscalls:sys_enter_read" {r=$1} $2=="syscalls:sys_enter_write" {w=$1} $2=="syscalls:sys_enter_writev" {wv=$1}
    $2=="syscalls:sys_enter_recvfrom" {rf=$1} $2=="syscalls:sys_enter_epoll_pwait" {ep=$1} $2=="syscalls:sys_enter_epoll_wait" {ew=$1}
    $2=="raw_syscalls:sys_enter" {all=$1} $2=="context-switches" {cs=$1} $2=="syscalls:sys_exit_read" {ea=$1} {name=$0}
    END { req=(w+wv)/2; if (req==0) exit
      printf "%-60s %5d requests, per request: read %.2f (EAGAIN %.2f), recvfrom %.2f, write %.2f, epoll %.2f, all calls %.2f, context switches %.2f\n",
        name, req, r/req, ea/req, rf/req, (w+wv)/req, (ep+ew)/req, all/req, cs/req }' "$f"
done
echo "bench output: $out/bench.log"
