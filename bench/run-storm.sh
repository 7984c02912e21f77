#!/usr/bin/env bash
# Reconnect storms (issue 16): the service and the floor, each started and stopped by bench/StormGen.
#
#   bench/run-storm.sh                         # every scenario below at N=19000 over K=8 source addresses
#   N=2000 bench/run-storm.sh                  # a quick look
#   SCENARIOS="reset-naive floor-reset-naive" bench/run-storm.sh
#
# Scenarios (plain TCP unless named tls-):
#   reset-naive          90 % of the connections reset at once (RST), all reconnecting within 1 s
#   floor-reset-naive    the same against bench/FloorServer (the .NET floor)
#   reset-client         the same, coming back as the heartbeat client does (jittered backoff 500 ms-30 s)
#   restart-client       SIGTERM, start again: peers come back as the heartbeat client (the reconnect hint, then backoff)
#   restart-naive        the same with peers that ignore the hint and retry within 1 s
#   floor-restart-naive  the same against the floor
#   native-reset-naive, native-restart-naive   the same against bench/NativeFloor (the C epoll floor; not by default)
#   tls-reset-naive      reset-naive over TLS, the client offering its cached session (resumption)
#   tls-reset-naive-full the same without resumption (a full handshake per reconnect)
#
# Every process is stopped by its PID (StormGen stops the server it started), every wait is bounded.
# Logs go to bench/results/ (git-ignored); a table is printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

N="${N:-19000}"
K="${K:-8}"
PORT="${PORT:-18181}"
SCENARIOS="${SCENARIOS:-reset-naive floor-reset-naive reset-client restart-client restart-naive floor-restart-naive tls-reset-naive tls-reset-naive-full}"
EXTRA_CONFIG="${EXTRA_CONFIG:-}"           # HOCON appended to the service's config
OUT=bench/results
mkdir -p "$OUT"
stamp="$(date -u +%Y%m%dT%H%M%SZ)"

echo "== machine ($(date -u '+%Y-%m-%d %H:%M UTC'))"
echo "nproc: $(nproc); kernel $(uname -r); dotnet $(dotnet --version); ulimit -n $(ulimit -n)"
echo "somaxconn: $(cat /proc/sys/net/core/somaxconn); tcp_max_syn_backlog: $(cat /proc/sys/net/ipv4/tcp_max_syn_backlog)"
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"

if [[ "${BUILD:-1}" == 1 ]]; then
  echo "== build (Release)"
  dotnet build Supervisor.sln -c Release -nologo -v q 2>&1 | grep -E "error|warning" || true
fi
if ss -ltnH "sport = :$PORT" | grep -q LISTEN; then echo "port $PORT is taken; set PORT"; exit 1; fi

cert="$OUT/storm-cert.pem"; key="$OUT/storm-key.pem"
[[ -f "$cert" ]] || openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj /CN=localhost \
  -keyout "$key" -out "$cert" 2>/dev/null

service_conf() {   # tls: on|off
  local conf="$OUT/storm-service-$1-$stamp.conf"
  cat >"$conf" <<HOCON
supervisor {
  tcp {
    host = "127.0.0.1", port = $PORT
    max-connections = 20000
    limits { max-connections-per-address = 20000 }
    tls { enabled = $1, certificate = "$PWD/$cert", key = "$PWD/$key" }
  }
  heartbeat { interval = 2s, timeout = 6s }
  http.enabled = off
  websocket.enabled = off
}
$EXTRA_CONFIG
HOCON
  echo "$conf"
}
plain_conf="$(service_conf off)"
tls_conf="$(service_conf on)"
SERVICE="dotnet $PWD/src/Supervisor.Service/bin/Release/net10.0/Supervisor.dll --config"
FLOOR="dotnet $PWD/bench/FloorServer/bin/Release/net10.0/FloorServer.dll --port $PORT --timeout 6s --max-runtime 900s"
# The native floor (one thread, epoll): what the machine and this one generator allow at all.
NATIVE="$PWD/bench/NativeFloor/bin/floor --port $PORT --timeout 6s --max-runtime 900s"
if [[ " $SCENARIOS " == *" native-"* ]]; then
  mkdir -p bench/NativeFloor/bin
  gcc -O2 -Wall -o bench/NativeFloor/bin/floor bench/NativeFloor/floor.c
fi

# Does the service resume TLS sessions? openssl saves the session it was given (a TLS 1.3 ticket arrives after the
# handshake, so each client sends a heartbeat and reads the answer before it closes) and offers it on the next
# connect. (`s_client -reconnect` reports no TLS 1.3 resumption at all: it reconnects before reading the ticket.)
tls_resumption() {
  local log="$OUT/storm-tls-probe-$stamp.log" sess="$OUT/storm-tls-session-$stamp"
  $SERVICE "$tls_conf" >"$log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 300); do ss -ltnH "sport = :$PORT" | grep -q LISTEN && break; sleep 0.1; done
  for version in -tls1_3 -tls1_2; do
    rm -f "$sess"
    local outcomes=""
    for _ in 1 2 3 4; do
      outcomes+="$( (printf '{"type":0,"timestamp":1,"seq":1}\n'; sleep 1) | timeout 20 openssl s_client -connect "127.0.0.1:$PORT" $version \
        -sess_out "$sess" $([[ -s "$sess" ]] && echo -sess_in "$sess") 2>/dev/null | grep -oE '^(New|Reused)' || echo failed) "
    done
    echo "TLS session resumption ($version), 4 connects each offering the last session: $outcomes"
  done
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
}
if [[ " $SCENARIOS " == *" tls-"* ]]; then tls_resumption; fi

STORM=(dotnet bench/StormGen/bin/Release/net10.0/StormGen.dll --port "$PORT" --connections "$N" --source-addresses "$K")
results="$OUT/storm-results-$stamp.txt"
: >"$results"
for scenario in $SCENARIOS; do
  log="$OUT/storm-$scenario-$stamp.log"
  case "$scenario" in
    reset-naive)          args=(--storm reset --comeback naive --server "$SERVICE $plain_conf") ;;
    floor-reset-naive)    args=(--storm reset --comeback naive --server "$FLOOR") ;;
    reset-client)         args=(--storm reset --comeback client --server "$SERVICE $plain_conf") ;;
    restart-client)       args=(--storm restart --comeback client --server "$SERVICE $plain_conf") ;;
    restart-naive)        args=(--storm restart --comeback naive --server "$SERVICE $plain_conf") ;;
    floor-restart-naive)  args=(--storm restart --comeback naive --server "$FLOOR") ;;
    native-reset-naive)   args=(--storm reset --comeback naive --server "$NATIVE") ;;
    native-restart-naive) args=(--storm restart --comeback naive --server "$NATIVE") ;;
    tls-reset-naive)      args=(--storm reset --comeback naive --tls --tls-resume on --server "$SERVICE $tls_conf") ;;
    tls-reset-naive-full) args=(--storm reset --comeback naive --tls --tls-resume off --server "$SERVICE $tls_conf") ;;
    *) echo "unknown scenario $scenario"; exit 1 ;;
  esac
  echo "== $scenario; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
  args[-1]="${args[-1]} >>$OUT/storm-server-$scenario-$stamp.log 2>&1"
  # The kernel's listen-queue counters (whole machine): SYNs or handshakes dropped because a backlog was full.
  overflows() { nstat -az TcpExtListenOverflows TcpExtListenDrops 2>/dev/null | awk 'NR>1 && $1 ~ /Tcp/ {printf "%s=%s ", $1, $2}'; }
  echo "listen queue before: $(overflows)"
  timeout 600 "${STORM[@]}" --label "$scenario" "${args[@]}" | tee "$log" || echo "($scenario: StormGen exited $?)"
  echo "listen queue after: $(overflows)"
  grep '^RESULT' "$log" >>"$results" || true
  echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
  sleep 5   # let the kernel retire the closed sockets before the next server
done

echo
echo "== summary"
awk '
  { delete kv; for (i = 2; i <= NF; i++) { split($i, p, "="); kv[p[1]] = p[2] }
    label = kv["label"]; labels[++n] = label
    for (k in kv) v[label, k] = kv[k] }
  END {
    split("lost back all_back_ms listening_after_ms all_back_from_listen_ms accepts_per_s accepts_peak_per_s attempts cpu_s cpu_percent cpu_per_reconnect_us rtt_before_p99_ms untouched_rtt_p50_ms untouched_rtt_p99_ms untouched_rtt_max_ms untouched_dropped closes connect_errors", keys, " ")
    printf "| figure |"; for (i = 1; i <= n; i++) printf " %s |", labels[i]; printf "\n"
    printf "|---|"; for (i = 1; i <= n; i++) printf "---:|"; printf "\n"
    for (j = 1; j in keys; j++) {
      k = keys[j]; printf "| %s |", k
      for (i = 1; i <= n; i++) printf " %s |", ((labels[i], k) in v) ? v[labels[i], k] : "–"
      printf "\n"
    }
  }' "$results"
echo
echo "raw: $results"
