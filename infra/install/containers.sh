#!/usr/bin/env bash
# What the container tests and `make images` need on Debian 12, idempotently: podman with runc, debootstrap for the
# base image, podman-compose for infra/compose.yaml, and a containers.conf that works on these VMs (hybrid cgroups and
# no CAP_SYS_RESOURCE: crun and the default ulimits fail; host networking, because a bridge's 10.88.x addresses
# cannot reach loopback services). An existing containers.conf is left alone.
set -euo pipefail
missing=()
for tool in podman runc debootstrap podman-compose; do command -v "$tool" >/dev/null 2>&1 || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "containers: needs ${missing[*]} (apt-get install podman runc debootstrap podman-compose, as root)" >&2
    exit 1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q podman runc debootstrap podman-compose >/dev/null
fi
if [ ! -f /etc/containers/containers.conf ] && [ "$(id -u)" = 0 ]; then
  mkdir -p /etc/containers
  cat > /etc/containers/containers.conf <<'CONF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=1000:1000"]
netns = "host"
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
fi
