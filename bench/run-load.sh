#!/usr/bin/env bash
# Load benchmark (issues 7 and 16): the service, the .NET floor, the native floor and (when selected) the source
# document's Go server, measured by the same load generator in one run, one after the other, and printed as one
# table with ratios (service / each of the others; without the service: go / each floor).
#
#   bench/run-load.sh                       # N=19000 K=4 STEADY=60s, spread arrivals: service, floor, native
#   N=2000 STEADY=10s bench/run-load.sh     # a quick look
#   TARGETS="service" bench/run-load.sh     # one of them only
#   ARRIVALS=burst bench/run-load.sh        # the generator of issue 7 (several frames per server wake-up)
#   NATIVE_MODE=edge bench/run-load.sh      # the native floor edge-triggered (default: level)
#   TARGETS="native go" bench/run-load.sh   # the source document's Go server (bench/GoServer, built by its build.sh;
#                                           # the generator speaks its frames: --protocol source-doc)
#   GO_ARGS=-quiet TARGETS=go bench/run-load.sh  # the Go server without the document's per-event printing
#   BUILD=0 bench/run-load.sh               # skip the dotnet build (the Release binaries are already there)
#
# Every process started here is stopped here (by its PID), every wait is bounded, and the
# generator stops by itself. Logs go to bench/results/ (git-ignored); a table is printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

N="${N:-19000}"
K="${K:-4}"
STEADY="${STEADY:-60s}"
ECHO="${ECHO:-10s}"
DATA_RATE="${DATA_RATE:-2000}"
DATA_SIZE="${DATA_SIZE:-128}"
SILENT="${SILENT:-0.05}"
JITTER="${JITTER:-0.1}"
SERVICE_PORT="${SERVICE_PORT:-18081}"
FLOOR_PORT="${FLOOR_PORT:-18091}"
NATIVE_PORT="${NATIVE_PORT:-18101}"
GO_PORT="${GO_PORT:-18111}"
GO_ARGS="${GO_ARGS:-}"                    # extra flags for the Go server, e.g. -quiet
TARGETS="${TARGETS:-service floor native}"
ARRIVALS="${ARRIVALS:-spread}"            # spread: frames one by one (production); burst: issue 7's sender
NATIVE_MODE="${NATIVE_MODE:-level}"       # the native floor's epoll mode: level or edge
EXTRA_CONFIG="${EXTRA_CONFIG:-}"          # HOCON appended to the service's config (e.g. a registry setting)
SERVICE_ENV="${SERVICE_ENV:-}"            # environment for the service process, e.g. "DOTNET_GCgen0size=0x400000"
FLOOR_ENV="${FLOOR_ENV:-}"                # environment for the floor process
OUT=bench/results
mkdir -p "$OUT"
stamp="$(date -u +%Y%m%dT%H%M%SZ)"

SERVER_PID=""
stop_server() {
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$SERVER_PID" 2>/dev/null; then
      echo "server $SERVER_PID did not stop on SIGTERM within 10 s: SIGKILL"
      kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
  fi
  [[ -n "$SERVER_PID" ]] && wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}
trap stop_server EXIT

wait_listening() {   # port, log: at most 60 s
  for _ in $(seq 1 600); do
    if ss -ltnH "sport = :$1" | grep -q LISTEN; then return 0; fi
    kill -0 "$SERVER_PID" 2>/dev/null || { echo "server exited:"; cat "$2"; return 1; }
    sleep 0.1
  done
  echo "server not listening on $1 after 60 s"; cat "$2"; return 1
}

echo "== machine ($(date -u '+%Y-%m-%d %H:%M UTC'))"
echo "nproc: $(nproc)"
free -h | sed -n '1,2p'
echo "dotnet: $(dotnet --version)"
echo "kernel: $(uname -r)"
echo "ulimit -n: $(ulimit -n)"
echo "load: $(uptime)"

if [[ "${BUILD:-1}" != 0 ]]; then
  echo "== build (Release)"
  dotnet build Supervisor.sln -c Release -nologo -v q 2>&1 | grep -E "Warn|Error|error|warning" || true
fi
NATIVE=bench/NativeFloor/bin/floor
if [[ " $TARGETS " == *" native "* ]]; then
  mkdir -p bench/NativeFloor/bin
  gcc -O2 -Wall -o "$NATIVE" bench/NativeFloor/floor.c
  echo "native floor: gcc -O2 ($(gcc -dumpfullversion)), $NATIVE_MODE-triggered"
fi
GOSERVER=bench/GoServer/bin/goserver
if [[ " $TARGETS " == *" go "* ]]; then
  bench/GoServer/build.sh
fi
case "$NATIVE_MODE" in level) NATIVE_ARGS=() ;; edge) NATIVE_ARGS=(--edge) ;; *) echo "NATIVE_MODE is level or edge"; exit 1 ;; esac

ports=("$SERVICE_PORT" "$FLOOR_PORT" "$NATIVE_PORT")
if [[ " $TARGETS " == *" go "* ]]; then ports+=("$GO_PORT"); fi
for port in "${ports[@]}"; do
  if ss -ltnH "sport = :$port" | grep -q LISTEN; then echo "port $port is taken; set SERVICE_PORT / FLOOR_PORT / NATIVE_PORT / GO_PORT"; exit 1; fi
done

conf="$OUT/service-$stamp.conf"
cat >"$conf" <<HOCON
supervisor {
  tcp {
    host = "127.0.0.1", port = $SERVICE_PORT
    max-connections = 20000
    limits { max-connections-per-address = 20000 }
  }
  heartbeat { interval = 2s, timeout = 6s }
  http.enabled = off
  websocket.enabled = off
}
$EXTRA_CONFIG
HOCON

LOADGEN=(dotnet bench/LoadGen/bin/Release/net10.0/LoadGen.dll --connections "$N" --source-addresses "$K"
         --interval 2s --jitter "$JITTER" --steady "$STEADY" --echo "$ECHO" --data-rate "$DATA_RATE"
         --data-size "$DATA_SIZE" --silent-fraction "$SILENT" --timeout 6s --arrivals "$ARRIVALS")

results="$OUT/results-$stamp.txt"
: >"$results"
for target in $TARGETS; do
  log="$OUT/$target-$stamp.log"
  case "$target" in
    service)
      env $SERVICE_ENV dotnet src/Supervisor.Service/bin/Release/net10.0/Supervisor.dll --config "$conf" >"$log" 2>&1 &
      SERVER_PID=$!; port="$SERVICE_PORT" ;;
    floor)
      env $FLOOR_ENV dotnet bench/FloorServer/bin/Release/net10.0/FloorServer.dll --port "$FLOOR_PORT" --timeout 6s --max-runtime 900s >"$log" 2>&1 &
      SERVER_PID=$!; port="$FLOOR_PORT" ;;
    native)
      "$NATIVE" --port "$NATIVE_PORT" --timeout 6s --max-runtime 900s "${NATIVE_ARGS[@]}" >"$log" 2>&1 &
      SERVER_PID=$!; port="$NATIVE_PORT" ;;
    go)
      # The document's values are 30 s / 90 s; the run uses the service's 2 s interval (the period of each
      # connection's checker) and 6 s timeout. Its stdout (a line per heartbeat and per check) is the log.
      # shellcheck disable=SC2086
      "$GOSERVER" -port "$GO_PORT" -interval 2s -timeout 6s -max-runtime 900s $GO_ARGS >"$log" 2>&1 &
      SERVER_PID=$!; port="$GO_PORT" ;;
    *) echo "unknown target $target"; exit 1 ;;
  esac
  wait_listening "$port" "$log"
  load_before="$(cut -d' ' -f1 /proc/loadavg)"
  echo "== $target (pid $SERVER_PID, port $port); env: $(case $target in service) echo "${SERVICE_ENV:-none}" ;; floor) echo "${FLOOR_ENV:-none}" ;; go) echo "$(go version | cut -d' ' -f3) ${GO_ARGS:-(no flags)}" ;; *) echo "$NATIVE_MODE-triggered" ;; esac); load before: $(cut -d' ' -f1-3 /proc/loadavg)"
  # The native floor prints its own counters on SIGUSR1 at the window's edges (a .NET server would die of it).
  signal=no; [[ $target == native ]] && signal=yes
  # The Go server speaks the source document's frames and answers without seq (see LoadGen's --protocol).
  protocol=ours; [[ $target == go ]] && protocol=source-doc
  timeout 900 "${LOADGEN[@]}" --label "$target" --port "$port" --pid "$SERVER_PID" --signal-window "$signal" --protocol "$protocol" | tee "$OUT/loadgen-$target-$stamp.log" ||
    echo "generator against $target failed (exit $?): no row for it; the next target runs"   # e.g. a warm-up timed out on a starved machine
  stop_server
  load_after="$(cut -d' ' -f1 /proc/loadavg)"
  echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
  extra="load_before=$load_before load_after=$load_after"
  if [[ $target == native ]]; then
    # Exact figures from the floor's own counters over the steady window: the first two STATS lines.
    extra+=" $(grep '^STATS' "$log" | head -2 | awk '
      { for (i = 2; i <= NF; i++) { split($i, p, "="); v[NR, p[1]] = p[2] } }
      END { if (NR < 2) exit
            w = v[2, "wakeups"] - v[1, "wakeups"]; r = v[2, "reads"] - v[1, "reads"]
            printf "epoll_frames_per_wakeup=%.2f epoll_events_per_wakeup=%.2f frames_per_read=%.2f", \
              (v[2, "frames"] - v[1, "frames"]) / w, (v[2, "events"] - v[1, "events"]) / w, (v[2, "frames"] - v[1, "frames"]) / r }')"
  fi
  grep '^RESULT' "$OUT/loadgen-$target-$stamp.log" | sed "s/\$/ $extra/" >>"$results" || true
  if [[ $target == go ]]; then gzip -f "$log"; fi   # its per-heartbeat lines: tens of MB at 19,000 connections
  sleep 5   # let the kernel retire the closed sockets before the next server
done

echo
echo "== summary: $ARRIVALS arrivals, N=$N, native floor $NATIVE_MODE-triggered (ratio = service / that target; without the service, go / that floor)"
awk '
  { delete kv; for (i = 2; i <= NF; i++) { split($i, p, "="); kv[p[1]] = p[2] }
    label = kv["label"]; labels[++n] = label
    for (k in kv) v[label, k] = kv[k] }
  END {
    split("load_before load_after server_runqueue_wait_ms_per_s loadgen_runqueue_wait_ms_per_s loadgen_cpu_percent_steady arrivals connections held dropped accepts_per_s cpu_per_accept_us heartbeats_per_s rtt_p50_ms rtt_p99_ms rtt_max_ms cpu_per_heartbeat_us cpu_percent_steady rss_empty_kib rss_steady_kib rss_per_conn_b open_files threads sender_frames_per_wakeup send_late_p99_ms server_wakeups_per_s frames_per_wakeup epoll_frames_per_wakeup epoll_events_per_wakeup echo_frames_per_s echo_mb_per_s echo_rtt_p99_ms silent silent_closed close_late_p50_ms close_late_p99_ms close_late_max_ms", keys, " ")
    # Ratio columns: the service (or, without it, the Go server) against each other target present, the native floor first.
    if (("service", "label") in v) top = "service"; else if (("go", "label") in v) top = "go"
    if (top != "") { split("native floor go", others, " ")
                     for (o = 1; o <= 3; o++) if (others[o] != top && ((others[o], "label") in v)) floors[++m] = others[o] }
    printf "| figure |"; for (i = 1; i <= n; i++) printf " %s |", labels[i]; for (f = 1; f <= m; f++) printf " %s / %s |", top, floors[f]; printf "\n"
    printf "|---|"; for (i = 1; i <= n + m; i++) printf "---:|"; printf "\n"
    for (j = 1; j in keys; j++) {
      k = keys[j]; printf "| %s |", k
      for (i = 1; i <= n; i++) printf " %s |", ((labels[i], k) in v) ? v[labels[i], k] : "–"
      for (f = 1; f <= m; f++) {
        a = v[top, k]; b = v[floors[f], k]
        if (k !~ /^(load_|arrivals|protocol)/ && a ~ /^-?[0-9.]+$/ && b ~ /^-?[0-9.]+$/ && b + 0 != 0) printf " %.2f |", a / b; else printf " – |"
      }
      printf "\n"
    }
  }' "$results"
echo
echo "raw: $results"
