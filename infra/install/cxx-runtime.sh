#!/usr/bin/env bash
# TorchSharp-cpu 0.107 (libtorch 2.10) needs GLIBCXX_3.4.32 (GCC 13+). Debian 12 ships GCC 12's
# libstdc++, so take libstdc++6 from Debian trixie with a low pin. Does nothing where it is present.
set -euo pipefail

has_runtime() {
  local lib
  for lib in /usr/lib/x86_64-linux-gnu/libstdc++.so.6 /usr/lib/aarch64-linux-gnu/libstdc++.so.6 /usr/lib64/libstdc++.so.6; do
    [ -e "$lib" ] && grep -aq 'GLIBCXX_3.4.32' "$lib" && return 0
  done
  return 1
}

if has_runtime; then
  echo "cxx-runtime: GLIBCXX_3.4.32 present"
  exit 0
fi

if [ "$(id -u)" != 0 ]; then
  echo "cxx-runtime: GLIBCXX_3.4.32 missing and not root; run 'sudo $0'" >&2
  exit 1
fi

src=/etc/apt/sources.list.d/debian.sources
if [ ! -f "$src" ]; then
  echo "cxx-runtime: $src not found; add Debian trixie as an apt source by hand and install libstdc++6 from it" >&2
  exit 1
fi
# Same URIs and key as the machine's Debian entry, suite trixie.
uris=$(awk '/^URIs:/ {print $2; exit}' "$src")
key=$(awk '/^Signed-By:/ {print $2; exit}' "$src")
cat > /etc/apt/sources.list.d/trixie.sources <<SRC
Types: deb
URIs: ${uris:-http://deb.debian.org/debian}
Suites: trixie
Components: main
Signed-By: ${key:-/usr/share/keyrings/debian-archive-keyring.gpg}
SRC
cat > /etc/apt/preferences.d/trixie-low <<PIN
Package: *
Pin: release n=trixie
Pin-Priority: 100
PIN
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q -t trixie libstdc++6
has_runtime || { echo "cxx-runtime: libstdc++6 from trixie still lacks GLIBCXX_3.4.32" >&2; exit 1; }
echo "cxx-runtime: installed libstdc++6 from trixie"
