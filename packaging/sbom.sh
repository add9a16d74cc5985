#!/usr/bin/env bash
# Writes the CycloneDX SBOM (JSON, spec 1.5) of everything the atgw package can link, for every
# target, from Cargo.lock: target/sbom/atgw.cdx.json, shipped in the .deb as
# /usr/share/doc/atgw/sbom.cdx.json. packaging/check-deb.sh runs it before `cargo deb` and
# checks the packaged copy against the lock file.
#
#   bash packaging/sbom.sh
#
# cargo-cyclonedx is installed from crates.io when missing. It writes one file beside every
# workspace member's Cargo.toml; the package's own is kept and the others removed.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-cyclonedx >/dev/null 2>&1 \
  || { echo "sbom: installing cargo-cyclonedx (compiles from crates.io; several minutes)"; cargo install --locked --quiet cargo-cyclonedx@0.5.9; }
# Reproducible: the SBOM's timestamp is the last commit's, not the build's.
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
export SOURCE_DATE_EPOCH
cargo cyclonedx --quiet --format json --spec-version 1.5 --target all --override-filename atgw-sbom-tmp
mkdir -p target/sbom
mv atgw-sbom-tmp.json target/sbom/atgw.cdx.json
find adapters -maxdepth 2 -name 'atgw-sbom-tmp.json' -delete
echo "sbom: target/sbom/atgw.cdx.json ($(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["components"]))' target/sbom/atgw.cdx.json) components)"
