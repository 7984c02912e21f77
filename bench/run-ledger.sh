#!/usr/bin/env bash
# Ledger replication benchmark (issue 8): the product's hand-written LedgerBatch protocol ("custom") against
# Akka.DistributedData ("ddata"), NODES actor systems as one cluster on loopback, one child process per node.
# Builds bench/LedgerReplication in Release, runs every mode RUNS times (interleaved), prints a markdown table.
#
#   bench/run-ledger.sh                                   # RUNS=2 MODES="custom ddata"
#   MODES="ddata-nodelta ddata-event ddata-lwwdict" RUNS=1 bench/run-ledger.sh   # the ddata variants
#   NODES=3 PER_NODE=2000 STEADY=10 RUNS=1 bench/run-ledger.sh                   # a quick look
#
# Modes: custom | ddata (ORSet<string>, one Update per 250 ms, delta-crdt on) | ddata-nodelta (delta-crdt off)
#        | ddata-event (one Update per open/close) | ddata-lwwdict (LWWDictionary<string, LedgerEntry>)
#        | ddata-bigdelta (delta-crdt.max-delta-size 5000, Akka's default 50) | ddata-slowgossip (gossip-interval 10 s, default 2 s).
# Before each run it waits (polling every 30 s, up to WAIT_MAX s) until no other cluster benchmark
# (Supervisor.dll, LoadGen, run-cluster.sh) is running, and records whether one was. Every process it starts is
# a child of the coordinator, which stops them (STOP, then kill by PID); every phase is bounded.
# Results (key=value) and node logs: bench/results/ledger-STAMP/ (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS="${RUNS:-2}"
MODES="${MODES:-custom ddata}"
NODES="${NODES:-5}"
PER_NODE="${PER_NODE:-19000}"
STEADY="${STEADY:-60}"
CHURN="${CHURN:-50}"
BASE_PORT="${BASE_PORT:-19400}"
WAIT_MAX="${WAIT_MAX:-2400}"
EXTRA="${EXTRA:-}"                      # more options for every run, e.g. EXTRA="--sample 2"
out="bench/results/ledger-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"

dotnet build -c Release bench/LedgerReplication/LedgerReplication.csproj -nologo -v q
DLL=bench/LedgerReplication/bin/Release/net10.0/LedgerReplication.dll

others_pattern='Supervisor.dll|LoadGen|run-cluster.sh'
others() { pgrep -f "$others_pattern" | tr '\n' ' ' || true; }

wait_quiet() {
  local waited=0 running
  running="$(others)"
  while [[ -n "$running" && $waited -lt $WAIT_MAX ]]; do
    echo "another benchmark is running (pids $running): waiting ($waited s so far)" >&2
    sleep 30
    waited=$((waited + 30))
    running="$(others)"
  done
  [[ -n "$running" ]] && echo "still running after $WAIT_MAX s (pids $running): running alongside it" >&2
  echo "$running"
}

mode_args() {
  case "$1" in
    custom)        echo "--mode custom" ;;
    ddata)         echo "--mode ddata" ;;
    ddata-nodelta) echo "--mode ddata --delta off" ;;
    ddata-event)   echo "--mode ddata --write event" ;;
    ddata-lwwdict) echo "--mode ddata --type lwwdict" ;;
    ddata-bigdelta) echo "--mode ddata --max-delta-size 5000" ;;
    ddata-slowgossip) echo "--mode ddata --gossip-interval 10" ;;
    *) echo "unknown mode $1" >&2; exit 2 ;;
  esac
}

echo "== machine: nproc $(nproc), $(free -g | awk '/Mem:/ {print $2}') GiB, dotnet $(dotnet --version), kernel $(uname -r)"
files=()
for run in $(seq 1 "$RUNS"); do
  for mode in $MODES; do
    label="$mode-$run"
    echo "== $label"
    # Let the previous run's processes go and the machine settle (a saturated ddata run leaves the load average high).
    [[ ${#files[@]} -gt 0 ]] && sleep "${COOLDOWN:-20}"
    before="$(wait_quiet | tail -1)"
    # shellcheck disable=SC2046
    dotnet "$DLL" run $(mode_args "$mode") --nodes "$NODES" --per-node "$PER_NODE" --steady "$STEADY" \
      --churn-rate "$CHURN" --base-port "$BASE_PORT" --out "$out" --label "$label" $EXTRA | tee "$out/$label.out" \
      | grep -E '^(node |cluster|snapshot|note|converge_ms|consistent|results)' || true
    after="$(others)"
    echo "others_running_before=${before:-none}" >>"$out/$label.txt"
    echo "others_running_after=${after:-none}" >>"$out/$label.txt"
    files+=("$out/$label.txt")
  done
done

echo
echo "== results ($out)"
dotnet "$DLL" table "${files[@]}" | tee "$out/table.md"
