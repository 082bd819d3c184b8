#!/usr/bin/env bash
# Builds the base image the training images start FROM, from Debian packages only (no container registry is reachable
# here): debootstrap of Debian trixie (its libstdc++ is new enough for libtorch), minbase plus what self-contained .NET
# programs and libtorch load. Cached: the tag is a hash of these inputs, so it is rebuilt only when they change.
# Prints the image name. Needs root, podman and debootstrap (infra/install/containers.sh installs them).
set -euo pipefail
suite=trixie
packages="ca-certificates,libgomp1,libicu76,libssl3t64,zlib1g,procps,passwd"
tag=$(printf '%s\n' "$suite" "$packages" "$(sha256sum "$0" | cut -c1-16)" | sha256sum | cut -c1-12)
image="localhost/training-base:$tag"
if podman image exists "$image"; then echo "$image"; exit 0; fi

# The machine's own Debian mirror (the URIs of its first non-security Debian source), never a hard-coded one.
mirror=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}')
[ -n "$mirror" ] || mirror=$(grep -hE '^deb [^ ]+' /etc/apt/sources.list 2>/dev/null | grep -v security | awk '{print $2; exit}')
[ -n "$mirror" ] || { echo "base-image: no Debian mirror found in /etc/apt/sources.list(.d)" >&2; exit 1; }

rootfs=$(mktemp -d /tmp/training-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
echo "base-image: debootstrap $suite from $mirror (a few minutes, once)" >&2
debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" "$mirror" >/tmp/training-debootstrap.log 2>&1 \
  || { tail -20 /tmp/training-debootstrap.log >&2; exit 1; }
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
tar -C "$rootfs" -c . | podman import - "$image" >/dev/null
echo "$image"
