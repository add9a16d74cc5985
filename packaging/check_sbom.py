#!/usr/bin/env python3
"""Checks a CycloneDX SBOM against Cargo.lock: every crate the atgw package can link (normal
and build dependencies, every target, as `cargo tree` resolves them from the lock file) is a
component with its exact version, a licence and a purl; the lock file's other crates are
not built into the package (dev-dependencies of the tests, or optional dependencies no
enabled feature builds); they are listed, not shipped.

    python3 packaging/check_sbom.py SBOM.json
"""
import json
import subprocess
import sys
import tomllib


def tree(edges):
    out = subprocess.run(
        ["cargo", "tree", "--locked", "-p", "atgw", "-e", edges, "--target", "all",
         "--prefix", "none", "--format", "{p}"],
        check=True, capture_output=True, text=True).stdout
    found = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[1].startswith("v"):
            found.add((parts[0], parts[1][1:]))
    return found


def main():
    sbom = json.load(open(sys.argv[1]))
    assert sbom.get("bomFormat") == "CycloneDX", "not a CycloneDX document"
    components = {(c["name"], c["version"]): c for c in sbom["components"]}
    lock = {(p["name"], p["version"]) for p in tomllib.load(open("Cargo.lock", "rb"))["package"]}
    linked = tree("normal,build") - {("atgw", sbom["metadata"]["component"]["version"])}
    problems = []
    for key in sorted(linked):
        c = components.get(key)
        if c is None:
            problems.append(f"{key[0]} {key[1]}: linked but not in the SBOM")
        elif not c.get("licenses"):
            problems.append(f"{key[0]} {key[1]}: no licence")
        elif not c.get("purl", "").startswith(f"pkg:cargo/{key[0]}@{key[1]}"):
            problems.append(f"{key[0]} {key[1]}: purl {c.get('purl')}")
    stray = sorted(set(components) - lock)
    problems += [f"{n} {v}: in the SBOM but not in Cargo.lock" for n, v in stray]
    test_only = sorted(lock - set(components) - {("atgw", sbom["metadata"]["component"]["version"])})
    if problems:
        print("sbom: FAIL\n  " + "\n  ".join(problems))
        sys.exit(1)
    print(f"sbom: {len(linked)} linked crates of Cargo.lock's {len(lock)} listed with version, "
          f"licence and purl; {len(test_only)} not built into the package (tests, unused optional "
          f"dependencies): "
          + ", ".join(f"{n} {v}" for n, v in test_only))


if __name__ == "__main__":
    main()
