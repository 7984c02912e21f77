#!/usr/bin/env bash
# Rolling restart of a cluster (issue 16): NODES supervisor nodes on loopback as one Akka.Cluster, NODES x N of the
# library's own heartbeat clients (bench/RollingGen, one process) each given every node (client.endpoints), then node 1
# is restarted (SIGTERM, wait for it to exit, start it again, wait until the others see it Up and its clients are back),
# then node 2, ... The generator records every connect and disconnect; the report says where the clients of each
# restarting node went (and how many went back to it while it restarted), the accepts per node per 100 ms against
# the share (the hinted reconnects over the hint window / the live nodes), and the connections every node holds.
#
#   flock /tmp/bench.lock bench/run-rolling.sh     # NODES=3 N=5000: 15,000 clients (take the lock: > 2,000 connections)
#   N=500 bench/run-rolling.sh                     # a quick look (3 x 500)
#   SPREAD=5s HOME_RETURN=10s bench/run-rolling.sh # the nodes' shutdown.reconnect-hint.spread, the clients' home-return-interval
#
# Every process started here is stopped here (by its PID, in the EXIT trap too) and every wait is bounded.
# Logs go to bench/results/rolling-<stamp>/ (git-ignored): marks.txt, events.csv (every connect and disconnect),
# held.csv (connections per node, once a second), the nodes' logs and /api/cluster answers.
set -euo pipefail
cd "$(dirname "$0")/.."

NODES="${NODES:-3}"
N="${N:-5000}"                          # clients per node: NODES x N in all
INTERVAL="${INTERVAL:-10s}"             # the clients' heartbeat interval (and the nodes')
HB_TIMEOUT="${HB_TIMEOUT:-30s}"
SPREAD="${SPREAD:-5s}"                  # the nodes' shutdown.reconnect-hint.spread
HOME_RETURN="${HOME_RETURN:-10s}"       # the clients' home-return-interval
RAMP_RATE="${RAMP_RATE:-1000}"          # clients started per second (a connect that times out on a busy machine rotates the client away from home)
RETURN_WAIT="${RETURN_WAIT:-60}"        # at most this many seconds for a restarted node's clients to come back
TCP_BASE="${TCP_BASE:-19480}"           # node i: tcp TCP_BASE+i, http HTTP_BASE+i, cluster CLUSTER_BASE+i
HTTP_BASE="${HTTP_BASE:-19580}"
CLUSTER_BASE="${CLUSTER_BASE:-19680}"
OUT=bench/results
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
run="$OUT/rolling-$stamp"
mkdir -p "$run"
marks="$run/marks.txt"
: >"$marks"

NODE_PIDS=()
GEN_PID=""

stop_pid() {   # pid, seconds: SIGTERM, then SIGKILL after the grace
  local pid="$1" grace="$2"
  [[ -z "$pid" ]] && return 0
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 $((grace * 10))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then echo "process $pid did not stop on SIGTERM within $grace s: SIGKILL"; kill -KILL "$pid" 2>/dev/null || true; fi
  fi
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  stop_pid "$GEN_PID" 60
  local pid; for pid in "${NODE_PIDS[@]}"; do stop_pid "$pid" 30; done
  rm -rf "$run/supervisor-bin" "$run/rollinggen-bin"
}
trap cleanup EXIT

now_ms() { date +%s%3N; }
mark() { echo "$(now_ms) $1 $2" >>"$marks"; }
http_get() {   # node, path, body file, [max seconds]: prints the HTTP code
  curl -s -o "$3" -w '%{http_code}' --max-time "${4:-10}" "http://127.0.0.1:$((HTTP_BASE + $1))$2" 2>/dev/null || true
}
node_name() { echo "127.0.0.1:$((CLUSTER_BASE + $1))"; }
connections_of() {   # node asked, node counted: the connections the cluster view says it holds
  http_get "$1" /api/cluster "$run/view.json" 10 >/dev/null
  jq -r --arg n "$(node_name "$2")" '[.members[] | select(.node == $n and .status == "up") | .connections] | first // 0' "$run/view.json" 2>/dev/null || echo 0
}

echo "== machine ($(date -u '+%Y-%m-%d %H:%M UTC')): nproc $(nproc), dotnet $(dotnet --version), kernel $(uname -r), ulimit -n $(ulimit -n)"
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== plan: $NODES nodes x $N clients; heartbeat $INTERVAL (timeout $HB_TIMEOUT); reconnect-hint spread $SPREAD; home-return-interval $HOME_RETURN; ramp $RAMP_RATE/s"

echo "== build (Release) of the working tree at $(git rev-parse --short HEAD) ($(git status --porcelain -- src bench/RollingGen | wc -l) uncommitted file(s))"
for project in src/Supervisor.Service/Supervisor.Service.csproj bench/RollingGen/RollingGen.csproj; do
  if ! dotnet build "$project" -c Release -nologo -v q >"$run/build.log" 2>&1; then
    grep -E "error" "$run/build.log" | head -20; echo "build of $project failed (log: $run/build.log)"; exit 1
  fi
done
# Run from a copy: a concurrent rebuild of the tree must not swap assemblies under running processes.
cp -r src/Supervisor.Service/bin/Release/net10.0 "$run/supervisor-bin"
cp -r bench/RollingGen/bin/Release/net10.0 "$run/rollinggen-bin"

for i in $(seq 1 "$NODES"); do
  for port in $((TCP_BASE + i)) $((HTTP_BASE + i)) $((CLUSTER_BASE + i)); do
    if ss -ltnH "sport = :$port" | grep -q LISTEN; then echo "port $port is taken; set TCP_BASE / HTTP_BASE / CLUSTER_BASE"; exit 1; fi
  done
done

seeds="\"$(node_name 1)\", \"$(node_name 2)\""
start_node() {   # node: writes its config, starts it, records its PID
  local i="$1"
  cat >"$run/node$i.conf" <<HOCON
supervisor {
  tcp {
    host = "127.0.0.1", port = $((TCP_BASE + i))
    max-connections = $((NODES * N + 1000))
    limits { max-connections-per-address = $((NODES * N + 1000)) }
  }
  heartbeat { interval = $INTERVAL, timeout = $HB_TIMEOUT }
  shutdown.reconnect-hint.spread = $SPREAD
  http { enabled = on, port = $((HTTP_BASE + i)) }
  websocket.enabled = off
  cluster {
    enabled = on
    hostname = "127.0.0.1"
    port = $((CLUSTER_BASE + i))
    seed-nodes = [$seeds]
    downing.stable-after = 2s
    failure-detector { heartbeat-interval = 500ms, acceptable-heartbeat-pause = 3s }
  }
}
HOCON
  dotnet "$run/supervisor-bin/Supervisor.dll" --config "$run/node$i.conf" >>"$run/node$i.log" 2>&1 &
  NODE_PIDS[i]=$!
}
wait_listening() {   # node, limit (s)
  local i="$1" start; start=$(now_ms)
  until ss -ltnH "sport = :$((TCP_BASE + i))" | grep -q LISTEN; do
    kill -0 "${NODE_PIDS[i]}" 2>/dev/null || { echo "node $i exited:"; tail -30 "$run/node$i.log"; exit 1; }
    (( $(now_ms) - start < $2 * 1000 )) || { echo "node $i not listening after $2 s"; tail -30 "$run/node$i.log"; exit 1; }
    sleep 0.1
  done
}
wait_up() {   # node, limit (s): every node sees NODES members up and reachable
  local i="$1" start j; start=$(now_ms)
  for j in $(seq 1 "$NODES"); do
    until [[ "$(http_get "$j" /api/cluster "$run/join.json" 5)" == 200 ]] &&
          [[ "$(jq '[.members[] | select(.status == "up" and .reachable)] | length' "$run/join.json")" == "$NODES" ]]; do
      (( $(now_ms) - start < $2 * 1000 )) || { echo "node $j does not see $NODES members up $2 s after node $i started:"; cat "$run/join.json"; exit 1; }
      sleep 0.2
    done
  done
}

for i in $(seq 1 "$NODES"); do start_node "$i"; done
for i in $(seq 1 "$NODES"); do wait_listening "$i" 120; done
wait_up 1 120
echo "== cluster of $NODES formed: pids ${NODE_PIDS[*]}"

endpoints="$(for i in $(seq 1 "$NODES"); do echo "127.0.0.1:$((TCP_BASE + i))"; done | paste -sd,)"
dotnet "$run/rollinggen-bin/RollingGen.dll" --endpoints "$endpoints" --clients $((NODES * N)) --interval "$INTERVAL" \
    --timeout "$HB_TIMEOUT" --home-return "$HOME_RETURN" --ramp-rate "$RAMP_RATE" --spread "$SPREAD" \
    --marks "$marks" --events "$run/events.csv" --held "$run/held.csv" \
    --node-logs "$(for i in $(seq 1 "$NODES"); do echo "$run/node$i.log"; done | paste -sd,)" >"$run/rollinggen.log" 2>&1 &
GEN_PID=$!
start=$(now_ms)
until grep -q '^ramp:' "$run/rollinggen.log" 2>/dev/null; do
  kill -0 "$GEN_PID" 2>/dev/null || { echo "generator exited:"; cat "$run/rollinggen.log"; exit 1; }
  (( $(now_ms) - start < 300000 )) || { echo "generator: no ramp line after 300 s"; tail "$run/rollinggen.log"; exit 1; }
  sleep 0.5
done
echo "generator (pid $GEN_PID): $(grep '^ramp:' "$run/rollinggen.log")"
# Clients whose first connect failed (a busy machine) started away from home and come back on their own: wait until
# no node's count has moved for 3 s (bounded), so the first restart starts from every client at home.
start=$(now_ms); last=""; still=0
while (( $(now_ms) - start < RETURN_WAIT * 1000 )); do
  counts="$(for i in $(seq 1 "$NODES"); do connections_of 1 "$i"; done | paste -sd' ')"
  if [[ "$counts" == "$last" ]]; then still=$((still + 1)); else still=0; fi
  (( still >= 6 )) && break
  last="$counts"; sleep 0.5
done
echo "   settled after $(( ($(now_ms) - start) / 1000 )) s: nodes hold $counts"

for k in $(seq 1 "$NODES"); do
  echo "== restart of node $k (pid ${NODE_PIDS[k]}), load $(cut -d' ' -f1 /proc/loadavg)"
  mark term "$k"
  kill -TERM "${NODE_PIDS[k]}"
  for _ in $(seq 1 600); do kill -0 "${NODE_PIDS[k]}" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "${NODE_PIDS[k]}" 2>/dev/null; then echo "node $k did not exit within 60 s of SIGTERM: SIGKILL"; kill -KILL "${NODE_PIDS[k]}"; fi
  wait "${NODE_PIDS[k]}" 2>/dev/null || true
  mark exited "$k"
  start_node "$k"
  mark started "$k"
  wait_listening "$k" 120
  mark listening "$k"
  wait_up "$k" 120
  mark up "$k"
  # Its clients come home on their own (home-return-interval): wait until it holds some and the count has not moved
  # for 3 s (bounded), and say how long it took.
  start=$(now_ms); last=-1; still=0
  while (( $(now_ms) - start < RETURN_WAIT * 1000 )); do
    held=$(connections_of "$k" "$k")
    if (( held > 0 && held == last )); then still=$((still + 1)); else still=0; fi
    (( still >= 6 )) && break
    last=$held; sleep 0.5
  done
  echo "   node $k: exited $(awk -v a="$(grep " exited $k\$" "$marks" | tail -1 | cut -d' ' -f1)" -v b="$(grep " term $k\$" "$marks" | tail -1 | cut -d' ' -f1)" 'BEGIN { printf "%.1f", (a - b) / 1000 }') s," \
       "up $(awk -v a="$(grep " up $k\$" "$marks" | tail -1 | cut -d' ' -f1)" -v b="$(grep " term $k\$" "$marks" | tail -1 | cut -d' ' -f1)" 'BEGIN { printf "%.1f", (a - b) / 1000 }') s after SIGTERM;" \
       "holds $(connections_of "$k" "$k") of its $N again $(( ($(now_ms) - start) / 1000 )) s after it was up"
done

sleep 3
http_get 1 /api/cluster "$run/cluster-end.json" 10 >/dev/null
echo "== the nodes' own view at the end: $(jq -c '[.members[] | "\(.node | sub(".*:"; "")) \(.status) \(.connections)"]' "$run/cluster-end.json")"
mark end 0
kill -TERM "$GEN_PID"
for _ in $(seq 1 600); do kill -0 "$GEN_PID" 2>/dev/null || break; sleep 0.1; done
wait "$GEN_PID" 2>/dev/null && gen_rc=0 || gen_rc=$?
GEN_PID=""
echo "== report (generator exit $gen_rc; every line also in $run/rollinggen.log)"
grep -E '^rolling\.' "$run/rollinggen.log" || tail -30 "$run/rollinggen.log"
echo "load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
exit "$gen_rc"
