#!/usr/bin/env bash
# Transport-footprint benchmark (issue 2): one command, bounded, cleans up after itself.
#
#   bench/TransportFootprint/run.sh [N=5000] [RUNS=2] [TRANSPORTS="raw-socket akka-streams akka-io"]
#
# For each run and transport: start the server process, wait for READY, run the client process
# (N connections, one heartbeat each, then idle), wait for the server to report and exit.
# Raw logs go to bench/TransportFootprint/results/ (git-ignored); a markdown table is printed at the end.
set -euo pipefail

N="${1:-5000}"
RUNS="${2:-2}"
TRANSPORTS="${3:-raw-socket akka-streams akka-io}"
CLIENT_CONCURRENCY="${CLIENT_CONCURRENCY:-64}"

cd "$(dirname "$0")"
DLL=bin/Release/net10.0/TransportFootprint.dll
OUT=results
mkdir -p "$OUT"
rm -f "$OUT"/*.log "$OUT"/results.txt

SERVER_PID=""
cleanup() {
  if [[ -n "$SERVER_PID" ]]; then
    if kill -0 "$SERVER_PID" 2>/dev/null; then
      echo "server $SERVER_PID still running: killing it"
      kill "$SERVER_PID" 2>/dev/null || true
    fi
    wait "$SERVER_PID" 2>/dev/null || true
  fi
}
trap cleanup EXIT

echo "== machine"
echo "nproc: $(nproc)"
free -h | sed -n '1,2p'
echo "dotnet: $(dotnet --version)"
echo "kernel: $(uname -r)"
echo "ulimit -n: $(ulimit -n)"

echo "== build"
dotnet build -c Release -nologo -v q 2>&1 | grep -E "Warn|Error|error|warning" || true

for run in $(seq 1 "$RUNS"); do
  for t in $TRANSPORTS; do
    slog="$OUT/server-$t-$run.log"
    clog="$OUT/client-$t-$run.log"
    echo "== run $run: $t, N=$N"
    dotnet "$DLL" server "$t" "$N" 0 180 >"$slog" 2>&1 &
    SERVER_PID=$!

    port=""
    for _ in $(seq 1 600); do                      # at most 60 s to come up
      port="$(sed -n 's/^READY port=//p' "$slog")"
      [[ -n "$port" ]] && break
      kill -0 "$SERVER_PID" 2>/dev/null || break
      sleep 0.1
    done
    if [[ -z "$port" ]]; then
      echo "server did not become ready:"; cat "$slog"; exit 1
    fi
    grep '^BASELINE' "$slog"

    # The client exits by itself once the server has exited (EOF on every connection);
    # timeout is only a safety net.
    timeout 300 dotnet "$DLL" client "$port" "$N" "$CLIENT_CONCURRENCY" 240 >"$clog" 2>&1 || echo "client exited non-zero (see $clog)"
    cat "$clog"

    for _ in $(seq 1 600); do                      # server reports and exits by itself; wait at most 60 s
      kill -0 "$SERVER_PID" 2>/dev/null || break
      sleep 0.1
    done
    cleanup
    SERVER_PID=""
    grep '^RESULT' "$slog" | tee -a "$OUT/results.txt" || { echo "no RESULT from $t:"; cat "$slog"; }
  done
done

echo "== summary (per idle connection = (with N - baseline) / N; CPU per accept = server CPU from first accept to N-th answered heartbeat / N)"
echo
echo "| transport | connections | run | managed heap / idle conn | RSS / idle conn | CPU / accept | accept phase wall |"
echo "|---|---:|---:|---:|---:|---:|---:|"
awk '
  { delete kv; for (i = 2; i <= NF; i++) { split($i, p, "="); kv[p[1]] = p[2] }
    run[kv["transport"]]++
    printf "| %s | %s | %d | %.0f B | %.1f KiB | %.0f µs | %.0f ms |\n",
      kv["transport"], kv["n"], run[kv["transport"]], kv["heapPerConn"], kv["rssPerConn"] / 1024,
      kv["cpuPerAcceptUs"], kv["acceptWallMs"] }
' "$OUT/results.txt"
