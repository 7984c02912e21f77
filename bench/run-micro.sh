#!/usr/bin/env bash
# Micro-benchmarks (issue 7): codec, framer and the heartbeat hot path, with bytes allocated per frame.
#
#   bench/run-micro.sh                 # every benchmark
#   bench/run-micro.sh '*HotPath*'     # a filter (BenchmarkDotNet --filter)
#
# In-process toolchain; reports land in BenchmarkDotNet.Artifacts/ (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
echo "load: $(uptime)"
dotnet build bench/Microbench/Microbench.csproj -c Release -nologo -v q 2>&1 | grep -E "Warn|Error|error|warning" || true
dotnet bench/Microbench/bin/Release/net10.0/Microbench.dll --filter "${1:-*}" --artifacts BenchmarkDotNet.Artifacts
