#!/usr/bin/env bash
# Builds the source document's Go server (bench/GoServer/main.go) into bench/GoServer/bin/goserver.
# Installs Go from Debian (golang-go: 1.19 on this machine) when missing; the server needs the
# standard library only, so nothing is fetched: the module has no requirements and GOPROXY is off.
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v go >/dev/null 2>&1; then
  echo "go is missing: apt-get install -y golang-go"
  apt-get install -y golang-go >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y golang-go >/dev/null; }
fi
mkdir -p bin
GOFLAGS=-mod=mod GOPROXY=off GOTOOLCHAIN=local CGO_ENABLED=0 go build -trimpath -o bin/goserver .
echo "goserver: $(go version | cut -d' ' -f3-4), bench/GoServer/bin/goserver"
