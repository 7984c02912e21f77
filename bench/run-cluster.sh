#!/usr/bin/env bash
# Cluster scale-out benchmark (issue 8): NODES supervisor nodes on loopback as one Akka.Cluster, one load
# generator per node holding N connections to it, then the cluster-wide operator queries measured from
# every node, and (KILL=1) one node SIGKILLed with its connections while the survivors are timed.
#
#   bench/run-cluster.sh                          # NODES=5 N=19000: 95,000 connections in all
#   NODES=3 N=2000 bench/run-cluster.sh           # a quick look
#   REV=HEAD bench/run-cluster.sh                 # build a clean export of that commit, not the working tree
#   KILL=0 bench/run-cluster.sh                   # no node loss
#
# Every process started here is stopped here (by its PID, in the EXIT trap too), every wait is bounded,
# and the generators stop by themselves after HOLD. Logs go to bench/results/ (git-ignored); a table is
# printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

NODES="${NODES:-5}"                       # supervisor nodes; the first two are the seed nodes
N="${N:-19000}"                           # connections per node (one generator per node)
K="${K:-4}"                               # source addresses per generator: 127.0.0.1 .. 127.0.0.K
INTERVAL="${INTERVAL:-15s}"               # generator heartbeat period (gaps in [interval*(1-jitter), interval])
HB_TIMEOUT="${HB_TIMEOUT:-45s}"           # the nodes' heartbeat.timeout (heartbeat.interval = INTERVAL)
JITTER="${JITTER:-0.1}"
HOLD="${HOLD:-25m}"                       # the generators' steady window; they are stopped as soon as the run is done
SAMPLES="${SAMPLES:-10}"                  # GET /api/stats per node
PAGE_SAMPLES="${PAGE_SAMPLES:-3}"         # GET /api/connections?limit=50 per node
FULL_SAMPLES="${FULL_SAMPLES:-2}"         # full GET /api/connections per node
CPU_WINDOW="${CPU_WINDOW:-30}"            # seconds of quiet hold over which CPU is measured
KILL="${KILL:-1}"                         # 1: SIGKILL one node and time the survivors
KILL_NODE="${KILL_NODE:-$NODES}"          # which node (1-based); the default, the last, is no seed and not the oldest
STABLE_AFTER="${STABLE_AFTER:-2s}"        # test-sized failure detection (the defaults are 20s / 1s / 3s)
FD_INTERVAL="${FD_INTERVAL:-500ms}"
FD_PAUSE="${FD_PAUSE:-3s}"
TCP_BASE="${TCP_BASE:-19080}"             # node i: tcp TCP_BASE+i, http HTTP_BASE+i, cluster CLUSTER_BASE+i
HTTP_BASE="${HTTP_BASE:-19180}"
CLUSTER_BASE="${CLUSTER_BASE:-19250}"
EXTRA_CONFIG="${EXTRA_CONFIG:-}"          # HOCON appended to every node's config
NODE_ENV="${NODE_ENV:-}"                  # environment for the node processes
REV="${REV:-}"                            # empty: build the working tree; else build `git archive $REV`
OUT=bench/results
mkdir -p "$OUT"
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
run="$OUT/cluster-$stamp"
mkdir -p "$run"
results="$run/results.txt"          # key=value lines, one figure each
: >"$results"

NODE_PIDS=()
GEN_PIDS=()
HELPER_PIDS=()      # background samplers (subshells of this script)

stop_pid() {   # pid, seconds: SIGTERM, then SIGKILL after the grace
  local pid="$1" grace="$2"
  [[ -z "$pid" ]] && return 0
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 $((grace * 10))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "process $pid did not stop on SIGTERM within $grace s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  wait "$pid" 2>/dev/null || true
}
stop_all() {
  local pid
  for pid in "${GEN_PIDS[@]}"; do stop_pid "$pid" 10; done     # generators first: the nodes then see their peers go
  for pid in "${NODE_PIDS[@]}"; do stop_pid "$pid" 30; done
  GEN_PIDS=(); NODE_PIDS=()
  for pid in "${HELPER_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  HELPER_PIDS=()
}
# The source export and the copies of the binaries are only needed while the processes run.
cleanup() { stop_all; rm -rf "${run:?}/src" "$run/supervisor-bin" "$run/loadgen-bin"; }
trap cleanup EXIT

put() { echo "$1=$2" >>"$results"; }
get() { awk -F= -v k="$1" '$1 == k { v = substr($0, length(k) + 2) } END { print v }' "$results"; }
now_ms() { date +%s%3N; }
# One GET: prints "code seconds bytes"; the body goes to $3.
http_get() {   # node, path, body file, [max seconds]
  curl -s -o "$3" -w '%{http_code} %{time_total} %{size_download}\n' --max-time "${4:-60}" \
    "http://127.0.0.1:$((HTTP_BASE + $1))$2" 2>/dev/null || true
}
quantiles() {  # reads numbers, prints "p50 max n"
  sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) { print "– – 0"; exit }
    i = int((NR + 1) / 2); printf "%s %s %d\n", v[i], v[NR], NR }'
}
proc_cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
proc_status() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }   # kB
open_files() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }
node_name() { echo "127.0.0.1:$((CLUSTER_BASE + $1))"; }
seconds_of() {  # "15s" / "500ms" -> seconds (awk number)
  case "$1" in *ms) awk -v v="${1%ms}" 'BEGIN { print v / 1000 }' ;; *s) echo "${1%s}" ;; *m) awk -v v="${1%m}" 'BEGIN { print v * 60 }' ;; esac
}

echo "== machine ($(date -u '+%Y-%m-%d %H:%M UTC'))"
echo "nproc: $(nproc)"
free -h | sed -n '1,2p'
echo "dotnet: $(dotnet --version)"
echo "kernel: $(uname -r)"
echo "ulimit -n: $(ulimit -n)"
echo "ip_local_port_range: $(cat /proc/sys/net/ipv4/ip_local_port_range)"
echo "load: $(uptime)"
echo "== plan: $NODES nodes x $N connections = $((NODES * N)); heartbeat $INTERVAL (timeout $HB_TIMEOUT, jitter $JITTER); K=$K; kill: $KILL (node $KILL_NODE); failure detection: heartbeat-interval $FD_INTERVAL, acceptable-heartbeat-pause $FD_PAUSE, stable-after $STABLE_AFTER"
put nodes "$NODES"; put per_node "$N"; put expected "$((NODES * N))"

# ---------------------------------------------------------------- build
if [[ -n "$REV" ]]; then
  src="$run/src"
  mkdir -p "$src"
  git archive "$REV" | tar -x -C "$src"
  echo "== build (Release) of $(git rev-parse --short "$REV") (clean export in $src)"
  put revision "$(git rev-parse --short "$REV")"
else
  src=.
  dirty="$(git status --porcelain -- src | wc -l)"
  echo "== build (Release) of the working tree at $(git rev-parse --short HEAD) ($dirty uncommitted file(s) under src/)"
  put revision "$(git rev-parse --short HEAD)$([[ $dirty -gt 0 ]] && echo "+dirty")"
fi
for project in src/Supervisor.Service/Supervisor.Service.csproj bench/LoadGen/LoadGen.csproj; do
  if ! dotnet build "$src/$project" -c Release -nologo -v q >"$run/build.log" 2>&1; then
    grep -E "error" "$run/build.log" | head -20; echo "build of $project failed (log: $run/build.log)"; exit 1
  fi
done
# Run from a copy: a concurrent rebuild of the tree must not swap assemblies under running nodes.
cp -r "$src/src/Supervisor.Service/bin/Release/net10.0" "$run/supervisor-bin"
cp -r "$src/bench/LoadGen/bin/Release/net10.0" "$run/loadgen-bin"

for i in $(seq 1 "$NODES"); do
  for port in $((TCP_BASE + i)) $((HTTP_BASE + i)) $((CLUSTER_BASE + i)); do
    if ss -ltnH "sport = :$port" | grep -q LISTEN; then echo "port $port is taken; set TCP_BASE / HTTP_BASE / CLUSTER_BASE"; exit 1; fi
  done
done

# ---------------------------------------------------------------- machine monitor (every 2 s, whole run)
phase() { echo "$1" >"$run/phase"; }
phase start
(
  read -r _ u n s idle iow irq sirq steal _ < /proc/stat; pb=$((u + n + s + irq + sirq + steal)); pa=$((pb + idle + iow))
  for _ in $(seq 1 3600); do
    sleep 2
    read -r _ u n s idle iow irq sirq steal _ < /proc/stat; b=$((u + n + s + irq + sirq + steal)); a=$((b + idle + iow))
    printf '%s %s %s %s %s\n' "$(date +%s)" "$(cat "$run/phase" 2>/dev/null)" \
      "$(awk -v b=$((b - pb)) -v a=$((a - pa)) -v c="$(nproc)" 'BEGIN { printf "%.0f", (a > 0 ? b / a * 100 * c : 0) }')" \
      "$(free -m | awk '/^Mem:/ { print $3 }')" "$(cut -d' ' -f1 /proc/loadavg)"
    pb=$b; pa=$a
  done
) >"$run/monitor.txt" 2>/dev/null &
HELPER_PIDS+=($!)

# ---------------------------------------------------------------- nodes
phase nodes
seeds="\"$(node_name 1)\", \"$(node_name 2)\""
if [[ "$NODES" -eq 1 ]]; then seeds="\"$(node_name 1)\""; fi
for i in $(seq 1 "$NODES"); do
  cat >"$run/node$i.conf" <<HOCON
supervisor {
  tcp {
    host = "127.0.0.1", port = $((TCP_BASE + i))
    max-connections = $((N + 1000))
    limits { max-connections-per-address = $((N + 1000)) }
  }
  heartbeat { interval = $INTERVAL, timeout = $HB_TIMEOUT }
  http { enabled = on, port = $((HTTP_BASE + i)) }
  websocket.enabled = off
  cluster {
    enabled = on
    hostname = "127.0.0.1"
    port = $((CLUSTER_BASE + i))
    seed-nodes = [$seeds]
    downing.stable-after = $STABLE_AFTER
    failure-detector { heartbeat-interval = $FD_INTERVAL, acceptable-heartbeat-pause = $FD_PAUSE }
  }
}
$EXTRA_CONFIG
HOCON
  env $NODE_ENV dotnet "$run/supervisor-bin/Supervisor.dll" --config "$run/node$i.conf" >"$run/node$i.log" 2>&1 &
  NODE_PIDS[i]=$!
done
echo "== nodes started: pids ${NODE_PIDS[*]}; node 1's configuration:"
sed 's/^/    /' "$run/node1.conf"

# Every node listening (tcp and http), then every node seeing NODES members up and reachable: at most 120 s.
start=$(now_ms)
for i in $(seq 1 "$NODES"); do
  until ss -ltnH "sport = :$((TCP_BASE + i))" | grep -q LISTEN && ss -ltnH "sport = :$((HTTP_BASE + i))" | grep -q LISTEN; do
    kill -0 "${NODE_PIDS[i]}" 2>/dev/null || { echo "node $i exited:"; tail -30 "$run/node$i.log"; exit 1; }
    (( $(now_ms) - start < 120000 )) || { echo "node $i not listening after 120 s"; tail -30 "$run/node$i.log"; exit 1; }
    sleep 0.2
  done
done
for i in $(seq 1 "$NODES"); do
  until [[ "$(http_get "$i" /api/cluster "$run/cluster-join-$i.json" 5 | cut -d' ' -f1)" == 200 ]] &&
        [[ "$(jq '[.members[] | select(.status == "up" and .reachable)] | length' "$run/cluster-join-$i.json")" == "$NODES" ]]; do
    kill -0 "${NODE_PIDS[i]}" 2>/dev/null || { echo "node $i exited:"; tail -30 "$run/node$i.log"; exit 1; }
    (( $(now_ms) - start < 120000 )) || { echo "node $i does not see $NODES members up after 120 s:"; cat "$run/cluster-join-$i.json"; exit 1; }
    sleep 0.5
  done
done
put cluster_formed_s "$(awk -v ms=$(( $(now_ms) - start )) 'BEGIN { printf "%.1f", ms / 1000 }')"
echo "== cluster formed in $(get cluster_formed_s) s: $(jq -c '[.members[] | .node]' "$run/cluster-join-1.json"); leader $(jq -r .leader "$run/cluster-join-1.json"), singleton $(jq -r .singleton "$run/cluster-join-1.json")"

# ---------------------------------------------------------------- generators, one after the other
phase ramp
ramp_limit=300
for i in $(seq 1 "$NODES"); do
  log="$run/loadgen$i.log"
  # No `timeout` wrapper: the PID must be the generator's own (its CPU is read from /proc); it stops by itself after HOLD.
  dotnet "$run/loadgen-bin/LoadGen.dll" --label "node$i" --port $((TCP_BASE + i)) --pid "${NODE_PIDS[i]}" \
      --connections "$N" --source-addresses "$K" --interval "$INTERVAL" --jitter "$JITTER" --settle 1s \
      --steady "$HOLD" --echo 0s --silent-fraction 0 --ramp-limit "${ramp_limit}s" >"$log" 2>&1 &
  GEN_PIDS[i]=$!
  start=$(now_ms)
  until grep -q '^ramp:' "$log" 2>/dev/null; do
    kill -0 "${GEN_PIDS[i]}" 2>/dev/null || { echo "generator $i exited:"; cat "$log"; exit 1; }
    (( $(now_ms) - start < (ramp_limit + 60) * 1000 )) || { echo "generator $i: no ramp line after $((ramp_limit + 60)) s"; cat "$log"; exit 1; }
    sleep 0.5
  done
  line="$(grep '^ramp:' "$log")"
  echo "generator $i (pid ${GEN_PIDS[i]}) -> node $i: $line"
  answered="$(sed -E 's#^ramp: ([0-9]+)/.*#\1#' <<<"$line")"
  put "gen${i}_answered" "$answered"
  put "gen${i}_accepts_per_s" "$(sed -E 's#.* = ([0-9]+) accepted.*#\1#' <<<"$line")"
  if [[ "$answered" != "$N" ]]; then
    echo "generator $i held $answered of $N; node $i log tail:"; tail -20 "$run/node$i.log"
  fi
done

# Every node's cluster-wide stats must say NODES*N active: at most 120 s after the last ramp.
expected=$((NODES * N))
start=$(now_ms)
while :; do
  ok=1
  for i in $(seq 1 "$NODES"); do
    http_get "$i" /api/stats "$run/stats-wait.json" 10 >/dev/null
    [[ "$(jq -r .active "$run/stats-wait.json" 2>/dev/null)" == "$expected" ]] || { ok=0; break; }
  done
  [[ $ok == 1 ]] && break
  (( $(now_ms) - start < 120000 )) || { echo "stats never said active = $expected within 120 s; node $i: $(cat "$run/stats-wait.json")"; break; }
  sleep 1
done
echo "== all ramps done; every node said active = $expected after $(( ($(now_ms) - start) / 1000 )) s (ok=$ok)"
put all_active_reached "$ok"

# ---------------------------------------------------------------- quiet hold: CPU, memory
phase hold
echo "== quiet hold: CPU over $CPU_WINDOW s, load $(cut -d' ' -f1-3 /proc/loadavg)"
hz=$(getconf CLK_TCK)
declare -A t0
for i in $(seq 1 "$NODES"); do t0[n$i]=$(proc_cpu_ticks "${NODE_PIDS[i]}"); t0[g$i]=$(proc_cpu_ticks "${GEN_PIDS[i]}"); done
read -r _ u n s idle iow irq sirq steal _ < /proc/stat; busy0=$((u + n + s + irq + sirq + steal)); all0=$((busy0 + idle + iow))
sleep "$CPU_WINDOW"
read -r _ u n s idle iow irq sirq steal _ < /proc/stat; busy1=$((u + n + s + irq + sirq + steal)); all1=$((busy1 + idle + iow))
nodes_cpu=0; gens_cpu=0
for i in $(seq 1 "$NODES"); do
  cn=$(awk -v a="${t0[n$i]}" -v b="$(proc_cpu_ticks "${NODE_PIDS[i]}")" -v hz="$hz" -v w="$CPU_WINDOW" 'BEGIN { printf "%.1f", (b - a) / hz / w * 100 }')
  cg=$(awk -v a="${t0[g$i]}" -v b="$(proc_cpu_ticks "${GEN_PIDS[i]}")" -v hz="$hz" -v w="$CPU_WINDOW" 'BEGIN { printf "%.1f", (b - a) / hz / w * 100 }')
  kill -0 "${NODE_PIDS[i]}" 2>/dev/null || cn=0   # exited during the window: counted as nothing, named below
  kill -0 "${GEN_PIDS[i]}" 2>/dev/null || cg=0
  put "node${i}_cpu_percent" "$cn"; put "gen${i}_cpu_percent" "$cg"
  nodes_cpu=$(awk -v a="$nodes_cpu" -v b="$cn" 'BEGIN { print a + b }'); gens_cpu=$(awk -v a="$gens_cpu" -v b="$cg" 'BEGIN { print a + b }')
  put "node${i}_rss_kib" "$(proc_status "${NODE_PIDS[i]}" VmRSS)"
  put "node${i}_open_files" "$(open_files "${NODE_PIDS[i]}")"
  put "node${i}_threads" "$(proc_status "${NODE_PIDS[i]}" Threads)"
  put "gen${i}_rss_kib" "$(proc_status "${GEN_PIDS[i]}" VmRSS)"
done
put nodes_cpu_percent "$nodes_cpu"; put gens_cpu_percent "$gens_cpu"
put machine_cpu_percent "$(awk -v b=$((busy1 - busy0)) -v a=$((all1 - all0)) -v c="$(nproc)" 'BEGIN { printf "%.1f", b / a * 100 * c }')"
# The machine may be shared: what the rest of it used in the same window.
put others_cpu_percent "$(awk -v m="$(get machine_cpu_percent)" -v n="$nodes_cpu" -v g="$gens_cpu" 'BEGIN { printf "%.1f", m - n - g }')"
put load_1min "$(cut -d' ' -f1 /proc/loadavg)"
put mem_used_mib "$(free -m | awk '/^Mem:/ { print $3 }')"
put sockstat_tcp "$(awk '/^TCP:/ { print "inuse " $3 ", mem " $NF " pages" }' /proc/net/sockstat)"
echo "   nodes $nodes_cpu %, generators $gens_cpu %, machine $(get machine_cpu_percent) % (of $(( $(nproc) * 100 )) %; other processes $(get others_cpu_percent) %); memory used $(get mem_used_mib) MiB; TCP $(get sockstat_tcp)"

# ---------------------------------------------------------------- queries from every node
phase queries
echo "== queries from every node"
for i in $(seq 1 "$NODES"); do
  : >"$run/stats-lat-$i.txt"
  for s in $(seq 1 "$SAMPLES"); do
    read -r code secs bytes < <(http_get "$i" /api/stats "$run/stats-$i.json" 30)
    echo "$secs" >>"$run/stats-lat-$i.txt"
    active="$(jq -r .active "$run/stats-$i.json" 2>/dev/null || echo "?")"
    [[ "$code" == 200 ]] || echo "node $i /api/stats sample $s: HTTP $code"
    echo "$code $secs $active" >>"$run/stats-samples-$i.txt"
  done
  read -r p50 max n < <(quantiles <"$run/stats-lat-$i.txt")
  put "node${i}_stats_p50_ms" "$(awk -v v="$p50" 'BEGIN { printf "%.1f", v * 1000 }')"
  put "node${i}_stats_max_ms" "$(awk -v v="$max" 'BEGIN { printf "%.1f", v * 1000 }')"
  put "node${i}_stats_active" "$(awk '{ print $3 }' "$run/stats-samples-$i.txt" | sort -u | paste -sd/)"

  read -r code secs bytes < <(http_get "$i" /api/cluster "$run/cluster-$i.json" 30)
  put "node${i}_cluster_ms" "$(awk -v v="$secs" 'BEGIN { printf "%.1f", v * 1000 }')"
  put "node${i}_cluster_view" "$(jq -r '[.members[] | "\(.node | sub(".*:"; "")):\(.connections)"] | join(" ")' "$run/cluster-$i.json" 2>/dev/null || echo "HTTP $code")"

  : >"$run/page-lat-$i.txt"
  for s in $(seq 1 "$PAGE_SAMPLES"); do
    read -r code secs bytes < <(http_get "$i" '/api/connections?limit=50' "$run/page-$i.json" 60)
    echo "$secs" >>"$run/page-lat-$i.txt"
  done
  read -r p50 max n < <(quantiles <"$run/page-lat-$i.txt")
  put "node${i}_page_p50_ms" "$(awk -v v="$p50" 'BEGIN { printf "%.1f", v * 1000 }')"
  put "node${i}_page_max_ms" "$(awk -v v="$max" 'BEGIN { printf "%.1f", v * 1000 }')"
  put "node${i}_page_bytes" "$bytes"
  put "node${i}_page_total" "$(jq -r '"\(.total)/\(.items | length)"' "$run/page-$i.json" 2>/dev/null || echo "HTTP $code")"

  : >"$run/full-lat-$i.txt"
  for s in $(seq 1 "$FULL_SAMPLES"); do
    read -r code secs bytes < <(http_get "$i" /api/connections "$run/full-$i.json" 120)
    echo "$secs" >>"$run/full-lat-$i.txt"
    items="$(jq -r '"\(.total)"' "$run/full-$i.json" 2>/dev/null || echo "HTTP $code")"
    echo "$code $secs $bytes $items" >>"$run/full-samples-$i.txt"
  done
  read -r p50 max n < <(quantiles <"$run/full-lat-$i.txt")
  put "node${i}_full_p50_ms" "$(awk -v v="$p50" 'BEGIN { printf "%.0f", v * 1000 }')"
  put "node${i}_full_max_ms" "$(awk -v v="$max" 'BEGIN { printf "%.0f", v * 1000 }')"
  put "node${i}_full_bytes" "$bytes"
  put "node${i}_full_items" "$(awk '{ print $4 }' "$run/full-samples-$i.txt" | paste -sd/)"
  rm -f "$run/full-$i.json"
  echo "node $i: stats p50 $(get node${i}_stats_p50_ms) ms max $(get node${i}_stats_max_ms) ms active $(get node${i}_stats_active);" \
       "cluster [$(get node${i}_cluster_view)]; page $(get node${i}_page_p50_ms) ms $(get node${i}_page_bytes) B;" \
       "full $(get node${i}_full_p50_ms)/$(get node${i}_full_max_ms) ms $(get node${i}_full_bytes) B items $(get node${i}_full_items)"
done
for i in $(seq 1 "$NODES"); do
  put "node${i}_rss_peak_kib" "$(proc_status "${NODE_PIDS[i]}" VmHWM)"
  put "node${i}_rss_after_queries_kib" "$(proc_status "${NODE_PIDS[i]}" VmRSS)"
done
put alerts_before_kill "$(http_get 1 /api/alerts "$run/alerts-before.json" 30 >/dev/null; jq -c '[.active[] | "\(.rule) (\(.scope))"] | unique' "$run/alerts-before.json" 2>/dev/null)"
put closed_before_kill "$(http_get 1 /api/stats "$run/stats-before-kill.json" 30 >/dev/null; jq -r '"active \(.active), accepted \(.accepted), closed \(.closed): " + ([.closedByReason | to_entries[] | select(.value > 0) | "\(.key) \(.value)"] | join(", "))' "$run/stats-before-kill.json" 2>/dev/null)"
# Members some node marked unreachable (and the resolver's verdicts) before any node was killed: near-misses of a false node-down.
put unreachable_marks_before_kill "$(cat "$run"/node*.log | grep -c 'Marking node(s) as UNREACHABLE' || true)"
put sbr_downing_before_kill "$(cat "$run"/node*.log | grep -c 'SBR is downing' || true)"

# A node the resolver downed exits by itself (this is how a false node-down shows): name it, with its last line.
exited=""
for i in $(seq 1 "$NODES"); do
  if ! kill -0 "${NODE_PIDS[i]}" 2>/dev/null; then
    rc=0; wait "${NODE_PIDS[i]}" 2>/dev/null || rc=$?
    NODE_PIDS[i]=""
    exited+="node$i (exit $rc: $(tail -1 "$run/node$i.log" | cut -c1-160)); "
  fi
done
if [[ -n "$exited" ]]; then
  put nodes_exited_before_kill "$exited"
  echo "== nodes that exited before the kill phase: $exited"
fi

# ---------------------------------------------------------------- node loss
if [[ "$KILL" == 1 && "$NODES" -ge 3 && -n "$exited" ]]; then
  echo "== node loss skipped: not every node is still up"
elif [[ "$KILL" == 1 && "$NODES" -ge 3 ]]; then
  victim="$KILL_NODE"
  vname="$(node_name "$victim")"
  survivors=(); for i in $(seq 1 "$NODES"); do [[ $i != "$victim" ]] && survivors+=("$i"); done
  budget="$(awk -v p="$(seconds_of "$FD_PAUSE")" -v s="$(seconds_of "$STABLE_AFTER")" 'BEGIN { print p + s }')"
  put kill_node "$vname"; put kill_budget_s "$budget"
  held_before="$(jq -r '.members[] | select(.node == "'"$vname"'") | .connections' "$run/cluster-1.json")"
  phase kill
  echo "== SIGKILL node $victim ($vname, pid ${NODE_PIDS[victim]}, $held_before connections); budget pause + stable-after = $budget s"
  killed_at=$(now_ms)
  kill -KILL "${NODE_PIDS[victim]}"
  wait "${NODE_PIDS[victim]}" 2>/dev/null || true
  NODE_PIDS[victim]=""
  declare -A seen_at=()
  deadline=$(( killed_at + (${budget%.*} + 60) * 1000 ))
  # /api/stats from the first survivor, back to back, while the victim is unreachable but not yet down (own loop,
  # so that a slow answer does not slow the polling of /api/cluster below).
  (
    while (( $(now_ms) < deadline )) && [[ ! -e "$run/kill-detected" ]]; do
      read -r code secs bytes < <(http_get "${survivors[0]}" /api/stats "$run/kill-stats.json" 10) || true
      echo "$(( $(now_ms) - killed_at )) $code $secs"
      sleep 0.1
    done
  ) >"$run/kill-stats-lat.txt" 2>/dev/null &
  HELPER_PIDS+=($!)
  while (( ${#seen_at[@]} < ${#survivors[@]} && $(now_ms) < deadline )); do
    for i in "${survivors[@]}"; do
      [[ -n "${seen_at[$i]:-}" ]] && continue
      http_get "$i" /api/cluster "$run/kill-cluster-$i.json" 10 >/dev/null
      if jq -e '.departures[] | select(.node == "'"$vname"'" and .reason == "node-down")' "$run/kill-cluster-$i.json" >/dev/null 2>&1; then
        seen_at[$i]=$(now_ms)
      fi
    done
    sleep 0.05
  done
  sleep 1; touch "$run/kill-detected"
  for i in "${survivors[@]}"; do
    if [[ -n "${seen_at[$i]:-}" ]]; then
      put "kill_seen_node${i}_s" "$(awk -v ms=$(( seen_at[$i] - killed_at )) 'BEGIN { printf "%.2f", ms / 1000 }')"
      at="$(jq -r '.departures[] | select(.node == "'"$vname"'" and .reason == "node-down") | .at' "$run/kill-cluster-$i.json" | head -1)"
      put "kill_departure_at_node${i}_s" "$(awk -v a="$(date -d "$at" +%s%3N)" -v k="$killed_at" 'BEGIN { printf "%.2f", (a - k) / 1000 }')"
      put "kill_lost_node${i}" "$(jq -r '.departures[] | select(.node == "'"$vname"'") | .lost' "$run/kill-cluster-$i.json" | head -1)"
    else
      put "kill_seen_node${i}_s" "never (within budget + 60 s)"
    fi
  done
  put kill_stats_during_detection "$(awk '{ n++; if ($3 > m) m = $3; if ($3 > 1) slow++ } END { printf "%d samples, max %.0f ms, %d over 1 s", n, m * 1000, slow }' "$run/kill-stats-lat.txt")"
  # Totals settle: every survivor says node-down = N (what the victim held) and active = (NODES-1)*N.
  want_active=$(( expected - held_before ))
  start=$(now_ms)
  while :; do
    ok=1
    for i in "${survivors[@]}"; do
      http_get "$i" /api/stats "$run/kill-stats-$i.json" 10 >/dev/null
      [[ "$(jq -r '"\(.active) \(.closedByReason["node-down"])"' "$run/kill-stats-$i.json" 2>/dev/null)" == "$want_active $held_before" ]] || ok=0
    done
    [[ $ok == 1 ]] && break
    (( $(now_ms) - start < 60000 )) || break
    sleep 0.5
  done
  put kill_totals_agree "$ok"
  put kill_totals_agree_after_s "$(awk -v ms=$(( $(now_ms) - killed_at )) 'BEGIN { printf "%.2f", ms / 1000 }')"
  for i in "${survivors[@]}"; do
    put "kill_stats_node${i}" "$(jq -r '"active \(.active), node-down \(.closedByReason["node-down"]), accepted \(.accepted), closed \(.closed)"' "$run/kill-stats-$i.json")"
    read -r code secs bytes < <(http_get "$i" /api/stats "$run/kill-stats-$i.json" 30)
    put "kill_stats_after_ms_node${i}" "$(awk -v v="$secs" 'BEGIN { printf "%.1f", v * 1000 }')"
  done
  # The node-down alert comes from the singleton cluster monitor; when the lost node ran it, it has to move first
  # (and a node whose proxy has not found the new one yet shows only its own alerts). Wait for it on every
  # survivor (at most 60 s), then count the distinct node-down:<victim> alerts each survivor shows.
  node_down_alerts() { jq -r --arg r "node-down:$vname" '[(.active + .history)[] | select(.rule == $r)] | unique_by(.id) | length' "$1" 2>/dev/null || echo 0; }
  declare -A alert_at=()
  while (( ${#alert_at[@]} < ${#survivors[@]} && $(now_ms) - killed_at < (${budget%.*} + 120) * 1000 )); do
    for i in "${survivors[@]}"; do
      [[ -n "${alert_at[$i]:-}" ]] && continue
      http_get "$i" /api/alerts "$run/kill-alerts-$i.json" 10 >/dev/null
      if (( $(node_down_alerts "$run/kill-alerts-$i.json") > 0 )); then alert_at[$i]=$(now_ms); fi
    done
    sleep 0.2
  done
  sleep 2   # a second alert, if one were raised, would show by now
  for i in "${survivors[@]}"; do
    http_get "$i" /api/alerts "$run/kill-alerts-$i.json" 30 >/dev/null
    if [[ -n "${alert_at[$i]:-}" ]]; then
      put "kill_alert_seen_node${i}_s" "$(awk -v ms=$(( alert_at[$i] - killed_at )) 'BEGIN { printf "%.2f", ms / 1000 }')"
    else
      put "kill_alert_seen_node${i}_s" "never (within budget + 120 s)"
    fi
    put "kill_alerts_node${i}" "$(jq -r --arg r "node-down:$vname" '[(.active + .history)[] | select(.rule == $r)] | unique_by(.id) |
        "\(length) (\(map("\(.id) scope=\(.scope) value=\(.value) raisedAt=\(.raisedAt)") | join("; ")))"' "$run/kill-alerts-$i.json")"
  done
  raised="$(jq -r --arg r "node-down:$vname" '[(.active + .history)[] | select(.rule == $r) | .raisedAt][0] // empty' "$run/kill-alerts-${survivors[0]}.json")"
  if [[ -n "$raised" ]]; then
    put kill_alert_raised_s "$(awk -v a="$(date -d "$raised" +%s%3N)" -v k="$killed_at" 'BEGIN { printf "%.2f", (a - k) / 1000 }')"
  fi
  echo "   seen as node-down by: $(for i in "${survivors[@]}"; do printf 'node%s %s s  ' "$i" "$(get kill_seen_node${i}_s)"; done)"
  echo "   totals agree: $(get kill_totals_agree) after $(get kill_totals_agree_after_s) s; node-down alert raised $(get kill_alert_raised_s) s after the kill; alerts on node ${survivors[0]}: $(get kill_alerts_node${survivors[0]})"
fi

# ---------------------------------------------------------------- stop, then the table
echo "== stopping generators, then nodes (by PID)"
phase stop
stop_all
for i in $(seq 1 "$NODES"); do
  echo "node$i: $(grep -cE '^\S+ (warn|fail|crit):' "$run/node$i.log" || true) warn/fail lines; the first:"
  grep -E '^\S+ (warn|fail|crit):' "$run/node$i.log" | head -3 | cut -c1-300 | sed 's/^/    /' || true
done >"$run/log-excerpts.txt"

echo
echo "== summary ($NODES nodes x $N connections; heartbeat $INTERVAL / $HB_TIMEOUT; revision $(get revision))"
echo "| node | accepts/s (ramp) | held | stats p50 / max (ms, n=$SAMPLES) | stats active | /api/cluster: ms; port:connections | ?limit=50 p50 / max (ms), bytes, total/items | full p50 / max (ms), bytes, total per sample | RSS (MiB) | peak RSS (MiB) | open files | threads | node CPU % | generator CPU % | generator RSS (MiB) |"
echo "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for i in $(seq 1 "$NODES"); do
  printf '| %s | %s | %s | %s / %s | %s | %s; %s | %s / %s, %s, %s | %s / %s, %s, %s | %s | %s | %s | %s | %s | %s | %s |\n' \
    "$(node_name "$i")" "$(get gen${i}_accepts_per_s)" "$(get gen${i}_answered)" \
    "$(get node${i}_stats_p50_ms)" "$(get node${i}_stats_max_ms)" "$(get node${i}_stats_active)" "$(get node${i}_cluster_ms)" "$(get node${i}_cluster_view)" \
    "$(get node${i}_page_p50_ms)" "$(get node${i}_page_max_ms)" "$(get node${i}_page_bytes)" "$(get node${i}_page_total)" \
    "$(get node${i}_full_p50_ms)" "$(get node${i}_full_max_ms)" "$(get node${i}_full_bytes)" "$(get node${i}_full_items)" \
    "$(awk -v k="$(get node${i}_rss_kib)" 'BEGIN { printf "%.0f", k / 1024 }')" \
    "$(awk -v k="$(get node${i}_rss_peak_kib)" 'BEGIN { printf "%.0f", k / 1024 }')" \
    "$(get node${i}_open_files)" "$(get node${i}_threads)" "$(get node${i}_cpu_percent)" "$(get gen${i}_cpu_percent)" \
    "$(awk -v k="$(get gen${i}_rss_kib)" 'BEGIN { printf "%.0f", k / 1024 }')"
done
echo
echo "machine monitor (every 2 s; $run/monitor.txt): phase, samples, CPU busy % of $(( $(nproc) * 100 )) (mean / max), memory used MiB (max), load (max)"
awk '{ n[$2]++; c[$2] += $3; if ($3 > cm[$2]) cm[$2] = $3; if ($4 > mm[$2]) mm[$2] = $4; if ($5 > lm[$2]) lm[$2] = $5; if (!($2 in seen)) { seen[$2] = 1; order[++k] = $2 } }
     END { for (j = 1; j <= k; j++) { p = order[j]; printf "  %-8s %4d  cpu %3.0f / %3.0f  mem %6d  load %s\n", p, n[p], c[p] / n[p], cm[p], mm[p], lm[p] } }' "$run/monitor.txt" | tee "$run/monitor-summary.txt"
echo
echo "| figure | value |"
echo "|---|---|"
for key in revision cluster_formed_s all_active_reached nodes_cpu_percent gens_cpu_percent machine_cpu_percent others_cpu_percent load_1min mem_used_mib sockstat_tcp \
           alerts_before_kill closed_before_kill unreachable_marks_before_kill sbr_downing_before_kill nodes_exited_before_kill \
           kill_node kill_budget_s kill_stats_during_detection kill_totals_agree kill_totals_agree_after_s; do
  if [[ -n "$(get "$key")" ]]; then echo "| $key | $(get "$key") |"; fi
done
grep -E '^kill_(seen|departure_at|lost|stats_node|alert|stats_after)' "$results" | sed -E 's/^([^=]*)=(.*)$/| \1 | \2 |/' || true
echo
if [[ -s "$run/log-excerpts.txt" ]]; then echo "log lines worth a look ($run/log-excerpts.txt):"; cat "$run/log-excerpts.txt"; fi
echo "raw: $results; logs: $run/"
