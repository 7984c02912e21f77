#!/usr/bin/env bash
# README's test command: installs what the tests need, builds in Release and runs every test.
# Ends with a plain "N passed, N failed" line.
set -uo pipefail
cd "$(dirname "$0")/.."

./scripts/setup.sh || exit 1
dotnet build Supervisor.sln -c Release -nologo -v quiet || exit 1

log=$(mktemp)
# A test that hangs is killed after 4 minutes and named (the longest test takes about one), so a stall is a red
# line with a name, never a run that never ends.
dotnet test Supervisor.sln -c Release --no-build -nologo --blame-hang-timeout 4m --blame-hang-dump-type none --logger "console;verbosity=normal" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}

passed=$(grep -oE 'Passed: +[0-9]+' "$log" | awk '{s+=$2} END {print s+0}')
failed=$(grep -oE 'Failed: +[0-9]+' "$log" | awk '{s+=$2} END {print s+0}')
rm -f "$log"
echo "$passed passed, $failed failed"
if [ "$status" -eq 0 ] && [ "$passed" -eq 0 ]; then
  echo "no test ran" >&2
  exit 1
fi
exit "$status"
