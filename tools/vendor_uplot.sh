#!/usr/bin/env bash
# Copy uPlot (the dashboard's chart library) from its npm package into the Python package, so that
# `pip install .` serves the dashboard without npm. Reproducible: the version is pinned here and in
# package.json, npm checks the tarball against the lockfile's integrity hash, and SHA256SUMS beside
# the copied files lets anyone compare them with a fresh `npm pack uplot@<version>`.
#
# Usage: tools/vendor_uplot.sh            (uses node_modules/uplot when it is the pinned version,
#                                          otherwise fetches the pinned version into a temporary dir)
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=1.6.32
DEST=nodeclient/dashboard/static/vendor/uplot

installed_version() { node -p 'require(process.argv[1]).version' "$(realpath "$1")/package.json" 2>/dev/null || true; }

src=node_modules/uplot
if [ "$(installed_version "$src")" != "$VERSION" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  npm install --no-save --no-audit --no-fund --loglevel=error --prefix "$tmp" "uplot@$VERSION"
  src=$tmp/node_modules/uplot
fi
[ "$(installed_version "$src")" = "$VERSION" ] || { echo "vendor_uplot: $src is not uplot $VERSION" >&2; exit 1; }

mkdir -p "$DEST"
cp "$src/dist/uPlot.iife.min.js" "$src/dist/uPlot.min.css" "$src/LICENSE" "$DEST/"
echo "$VERSION" > "$DEST/VERSION"
(cd "$DEST" && sha256sum uPlot.iife.min.js uPlot.min.css LICENSE > SHA256SUMS)
echo "vendor_uplot: uplot $VERSION -> $DEST"
