#!/usr/bin/env bash
# Installs and starts what Cronium needs on a fresh Debian machine: Docker
# (docker.io), Podman, mmdebstrap for the offline image builds, and
# PostgreSQL for the store tests, and Chromium for the dashboard's browser tests.
# Idempotent; needs root.
set -euo pipefail

need=()
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
command -v mmdebstrap >/dev/null 2>&1 || need+=(mmdebstrap)
command -v mkfs.ext4 >/dev/null 2>&1 || need+=(e2fsprogs) # user workspaces are ext4 file systems
# Network policies: iptables rules, tc shaping, and the tests' network namespaces.
command -v iptables-restore >/dev/null 2>&1 || need+=(iptables)
command -v tc >/dev/null 2>&1 || need+=(iproute2)
# The helper tests run the helpers on the host too, with these interpreters and tools.
command -v jq >/dev/null 2>&1 || need+=(jq)
command -v bc >/dev/null 2>&1 || need+=(bc)
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v node >/dev/null 2>&1 || need+=(nodejs)
# Custom images: the tests start a local registry (Debian's docker-registry).
command -v docker-registry >/dev/null 2>&1 || need+=(docker-registry)
# The engine-restart tests find dockerd and its containerd with pidof and pgrep.
command -v pgrep >/dev/null 2>&1 || need+=(procps)
command -v pidof >/dev/null 2>&1 || need+=(sysvinit-utils)
# The podman engine (and its tests): rootful Podman, with catatonit (its
# init, which Debian only recommends).
command -v podman >/dev/null 2>&1 || need+=(podman)
[ -x /usr/libexec/podman/catatonit ] || need+=(catatonit)
# The store tests start a PostgreSQL server of their own (internal/pgtest).
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
# The dashboard's browser tests drive a real headless Chromium.
command -v chromium >/dev/null 2>&1 || need+=(chromium)
# The schedule tests compare two sources of zone data: the host's and Go's.
[ -f /usr/share/zoneinfo/Europe/Berlin ] || need+=(tzdata)
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

# A docker CLI may exist without a daemon (and on this kind of machine it does):
# probe the daemon's socket, not the CLI.
engine_up() { docker version >/dev/null 2>&1; }
if ! engine_up; then
  echo "setup: starting dockerd (log: /var/log/cronium-dockerd.log)"
  nohup dockerd >/var/log/cronium-dockerd.log 2>&1 &
  for _ in $(seq 1 60); do
    engine_up && break
    sleep 1
  done
  if ! engine_up; then
    echo "setup: dockerd did not come up; last log lines:" >&2
    tail -n 20 /var/log/cronium-dockerd.log >&2
    exit 1
  fi
fi
echo "setup: docker $(docker version --format '{{.Server.Version}}') is running"
