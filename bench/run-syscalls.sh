#!/usr/bin/env bash
# System calls and thread wake-ups per heartbeat (issue 16): the service under the load generator's steady heartbeats,
# counted with `strace -c -f` over a window of the steady phase. Counts do not depend on how busy the machine is,
# unlike CPU time, so they can be taken beside other work; CPU figures still need bench/run-load.sh on a quiet machine.
#
#   bench/run-syscalls.sh                                        # the default transport (epoll on Linux), N=2000, 10 s window
#   EXTRA_CONFIG='supervisor.tcp.transport = sockets' bench/run-syscalls.sh
#   TARGET=floor bench/run-syscalls.sh                           # bench/FloorServer
#
# Every process started here is stopped here (by its PID); every wait is bounded. Output in bench/results/.
set -euo pipefail
cd "$(dirname "$0")/.."

N="${N:-2000}"
WINDOW="${WINDOW:-10}"                 # seconds counted
PORT="${PORT:-18181}"
TARGET="${TARGET:-service}"
EXTRA_CONFIG="${EXTRA_CONFIG:-}"
OUT=bench/results
mkdir -p "$OUT"
stamp="$(date -u +%Y%m%dT%H%M%SZ)"

SERVER_PID=""; GEN_PID=""
cleanup() {
  [[ -n "$GEN_PID" ]] && kill -TERM "$GEN_PID" 2>/dev/null || true
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
  fi
}
trap cleanup EXIT

conf="$OUT/syscalls-$stamp.conf"
cat >"$conf" <<HOCON
supervisor {
  tcp { host = "127.0.0.1", port = $PORT, max-connections = 20000, limits { max-connections-per-address = 20000 } }
  heartbeat { interval = 2s, timeout = 6s }
  http.enabled = off
  websocket.enabled = off
}
$EXTRA_CONFIG
HOCON

log="$OUT/syscalls-$TARGET-$stamp.log"
case "$TARGET" in
  service) dotnet src/Supervisor.Service/bin/Release/net10.0/Supervisor.dll --config "$conf" >"$log" 2>&1 & ;;
  floor) dotnet bench/FloorServer/bin/Release/net10.0/FloorServer.dll --port "$PORT" --timeout 6s --max-runtime 600s >"$log" 2>&1 & ;;
  *) echo "TARGET is service or floor"; exit 1 ;;
esac
SERVER_PID=$!
for _ in $(seq 1 600); do ss -ltnH "sport = :$PORT" | grep -q LISTEN && break; sleep 0.1; done
grep -i "transport" "$log" || true
# The idle process's own calls (timer threads, the deadline queue, the runtime) over the same window: subtracted below,
# so what is left is what the heartbeats cost.
sleep 3
idle="$OUT/syscalls-idle-$TARGET-$stamp.txt"
timeout -s INT "$WINDOW" strace -f -c -o "$idle" -p "$SERVER_PID" 2>/dev/null || true

# Steady heartbeats only (no echo window, nobody goes silent) for longer than the counted window.
gen_log="$OUT/syscalls-gen-$TARGET-$stamp.log"
timeout 600 dotnet bench/LoadGen/bin/Release/net10.0/LoadGen.dll --label "$TARGET" --port "$PORT" --pid "$SERVER_PID" \
  --connections "$N" --source-addresses 2 --interval 2s --jitter 0.1 --settle 5s --steady "$((WINDOW + 20))s" \
  --echo 0s --silent-fraction 0 --timeout 6s >"$gen_log" 2>&1 &
GEN_PID=$!
for _ in $(seq 1 1200); do grep -q "^ramp:" "$gen_log" 2>/dev/null && break; sleep 0.1; done
sleep 7   # the settle, and into the steady window
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
counts="$OUT/syscalls-count-$TARGET-$stamp.txt"
timeout -s INT "$WINDOW" strace -f -c -o "$counts" -p "$SERVER_PID" 2>/dev/null || true
wait "$GEN_PID" || true
GEN_PID=""
hb=$(grep -o 'heartbeats_per_s=[0-9.]*' "$gen_log" | cut -d= -f2)
echo "heartbeats per second (generator, steady): $hb"
awk -v hb="$hb" -v w="$WINDOW" '
  FNR == 1 { file++ }
  $1 ~ /^[0-9.]+$/ && $4 ~ /^[0-9]+$/ && $NF != "total" {
    if (file == 1) { idle[$NF] = $4; idleTotal += $4 } else { calls[$NF] = $4; total += $4 } }
  END {
    n = hb * w
    printf "system calls per heartbeat: %.2f under load, %.2f net of the idle process (%d calls, %d idle, about %d heartbeats)\n", total / n, (total - idleTotal) / n, total, idleTotal, n
    for (c in calls) if (calls[c] / n >= 0.05) printf "  %-16s %.2f under load, %.2f net\n", c, calls[c] / n, (calls[c] - idle[c]) / n
  }' "$idle" "$counts"
echo "raw: $idle $counts"
