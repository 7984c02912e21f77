#!/usr/bin/env bash
# Idle footprint (issue 16 point 3): what one supervised idle connection costs the service process, plain and TLS.
#
#   bench/run-footprint.sh                          # N=2000, MODES="plain tls", ROUNDS=2 (interleaved)
#   N=19000 MODES=plain ROUNDS=1 bench/run-footprint.sh
#   SERVICE_ENV="DOTNET_GCgen0size=0x400000" bench/run-footprint.sh
#
# Each round starts a fresh service (the run-load.sh config: heartbeat 2 s / 6 s, http and websocket off; for tls a
# throw-away certificate made here), holds N connections that heartbeat every 2 s and wait for their answers, and
# reads the service's VmRSS: (median over the hold window - the empty process after warm-up) / N. Every process
# started here is stopped here by its PID; the generator stops by itself. Logs in bench/results/ (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."

N="${N:-2000}"
K="${K:-4}"
MODES="${MODES:-plain tls}"
ROUNDS="${ROUNDS:-2}"
HOLD="${HOLD:-20s}"
KEY="${KEY:-rsa}"                          # the bench certificate's key: rsa (2048) or ec (P-256)
PORT="${PORT:-18085}"
EXTRA_CONFIG="${EXTRA_CONFIG:-}"          # HOCON appended to the service's config
SERVICE_ENV="${SERVICE_ENV:-}"            # environment for the service process
# SKIP_BUILD=1 measures the build that is there
OUT=bench/results
mkdir -p "$OUT"
stamp="$(date -u +%Y%m%dT%H%M%SZ)"

SERVER_PID=""
stop_server() {
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$SERVER_PID" 2>/dev/null; then kill -KILL "$SERVER_PID" 2>/dev/null || true; fi
  fi
  [[ -n "$SERVER_PID" ]] && wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}
trap stop_server EXIT

echo "== machine ($(date -u '+%Y-%m-%d %H:%M UTC')): nproc $(nproc), dotnet $(dotnet --version), kernel $(uname -r), $(openssl version)"
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
if [[ -z "${SKIP_BUILD:-}" ]]; then   # SKIP_BUILD=1: measure what is built
  echo "== build (Release)"
  dotnet build Supervisor.sln -c Release -nologo -v q 2>&1 | grep -E " error |warning" || true
fi

cert="$OUT/footprint-cert.pem"; key="$OUT/footprint-key.pem"
case "$KEY" in
  rsa) openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost -keyout "$key" -out "$cert" 2>/dev/null ;;
  ec) openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost -keyout "$key" -out "$cert" 2>/dev/null ;;
  *) echo "KEY must be rsa or ec"; exit 1 ;;
esac

write_conf() {   # mode -> config file
  local conf="$OUT/footprint-$1-$stamp.conf" tls="enabled = off"
  [[ "$1" == tls ]] && tls="enabled = on, certificate = \"$PWD/$cert\", key = \"$PWD/$key\""
  cat >"$conf" <<HOCON
supervisor {
  tcp {
    host = "127.0.0.1", port = $PORT
    max-connections = 60000
    limits { max-connections-per-address = 60000 }
    tls { $tls }
  }
  heartbeat { interval = 2s, timeout = 6s }
  http.enabled = off
  websocket.enabled = off
}
$EXTRA_CONFIG
HOCON
  echo "$conf"
}

results="$OUT/footprint-$stamp.txt"
: >"$results"
for round in $(seq 1 "$ROUNDS"); do
  for mode in $MODES; do
    if ss -ltnH "sport = :$PORT" | grep -q LISTEN; then echo "port $PORT is taken; set PORT"; exit 1; fi
    conf="$(write_conf "$mode")"
    log="$OUT/footprint-service-$mode-$round-$stamp.log"
    env $SERVICE_ENV dotnet src/Supervisor.Service/bin/Release/net10.0/Supervisor.dll --config "$conf" >"$log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 600); do
      ss -ltnH "sport = :$PORT" | grep -q LISTEN && break
      kill -0 "$SERVER_PID" 2>/dev/null || { echo "service exited:"; cat "$log"; exit 1; }
      sleep 0.1
    done
    echo "== round $round, $mode (pid $SERVER_PID); env: ${SERVICE_ENV:-none}; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
    flag=(); [[ "$mode" == tls ]] && flag=(--tls)
    timeout 600 dotnet bench/IdleFootprint/bin/Release/net10.0/IdleFootprint.dll --label "$mode" --port "$PORT" --pid "$SERVER_PID" \
      --connections "$N" --source-addresses "$K" --hold "$HOLD" --smaps "$OUT/smaps-$mode-$round-$stamp" "${flag[@]}" | tee "$OUT/footprint-$mode-$round-$stamp.log" || true
    grep '^RESULT' "$OUT/footprint-$mode-$round-$stamp.log" >>"$results" || echo "round $round $mode: no RESULT"
    smaps="$OUT/smaps-$mode-$round-$stamp"
    if [[ -f "$smaps/$mode-held.smaps" ]]; then   # where the growth lies: the GC's heap, malloc (OpenSSL), the rest
      python3 bench/smaps-breakdown.py "$smaps/$mode-empty.smaps" "$smaps/$mode-held.smaps" "$N"
    fi
    stop_server
    sleep 3   # let the kernel retire the closed sockets
  done
done

echo
echo "== summary (RSS per idle connection, B; load now $(cut -d' ' -f1-3 /proc/loadavg))"
awk '{ delete kv; for (i = 2; i <= NF; i++) { split($i, p, "="); kv[p[1]] = p[2] }
       printf "%-6s held %6s of %6s  empty %7s KiB  held %7s KiB  => %6s B per connection, %s us CPU per heartbeat  (kernel: slab %s B, buffers %s B per socket)\n",
         kv["label"], kv["held"], kv["connections"], kv["rss_empty_kib"], kv["rss_held_kib"], kv["rss_per_conn_b"], kv["cpu_per_heartbeat_us"], kv["kernel_slab_per_socket_b"], kv["kernel_buffers_per_socket_b"] }' "$results"
echo "raw: $results"
