#!/usr/bin/env bash
# Installs the Debian packages the tests use (real tools, no mocks): iproute2 for
# `ss` and network namespaces, python3 for frozen and vanished test peers,
# chromium for the dashboard tests (Playwright drives /usr/bin/chromium; no
# browser is downloaded), openssl for the TLS tests, redis-server for the redis
# probe tests (started by the tests themselves), systemd for systemd-analyze and
# systemd-sysusers (the tests of the unit in deploy/), prometheus-alertmanager for the
# Alertmanager sink tests (started by the tests themselves), prometheus for promtool (the
# tests check the real /metrics output with `promtool check metrics`), haproxy for the PROXY
# protocol tests (a real balancer in front of the service, started by the tests).
# Installs only what is missing; runs `apt-get update` at most once.
set -euo pipefail

needed=(iproute2 python3 procps openssl redis-server chromium systemd prometheus-alertmanager prometheus haproxy)
missing=()
for pkg in "${needed[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq "${missing[@]}" >/dev/null
