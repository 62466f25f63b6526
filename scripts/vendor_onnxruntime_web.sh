#!/usr/bin/env bash
# Refresh the ONNX Runtime Web files the browser page runs on (src/mobilefer/web/ort/) from npm.
#   scripts/vendor_onnxruntime_web.sh VERSION
# They are vendored, not fetched at install time: `pip install` (from a wheel, an sdist or a git
# clone), `mobilefer serve` and `mobilefer export --format web` then work with no network and no
# Node.js, and the bytes that run in a user's browser are the ones reviewed here. npm checks the
# tarball against the registry's sha512 integrity; MANIFEST.json records it with each file's
# sha256, which the tests check. Only the WebAssembly CPU build is kept (one bundle, one .mjs
# loader, one .wasm): the page never uses WebGL/WebGPU, JSEP or JSPI.
set -euo pipefail
version=${1:?onnxruntime-web VERSION, e.g. 1.31.1}
dest=$(cd "$(dirname "$0")/.." && pwd)/src/mobilefer/web/ort
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "onnxruntime-web@$version" >/dev/null)
integrity=$(npm view "onnxruntime-web@$version" dist.integrity)
license=$(npm view "onnxruntime-web@$version" license)
[[ $license == MIT ]] || { echo "onnxruntime-web $version is $license, not MIT: check before vendoring" >&2; exit 1; }
tar xzf "$work"/onnxruntime-web-"$version".tgz -C "$work"
files=(ort.wasm.min.js ort-wasm-simd-threaded.mjs ort-wasm-simd-threaded.wasm)
mkdir -p "$dest"
rm -f "$dest"/ort*.js "$dest"/ort*.mjs "$dest"/ort*.wasm
for f in "${files[@]}"; do cp "$work/package/dist/$f" "$dest/$f"; done
python3 - "$dest" "$version" "$integrity" "${files[@]}" <<'PY'
import hashlib, json, sys
from pathlib import Path
dest, version, integrity, *files = sys.argv[1:]
manifest = {"package": "onnxruntime-web", "version": version, "license": "MIT",
            "npm_integrity": integrity, "source": f"https://registry.npmjs.org/onnxruntime-web/-/onnxruntime-web-{version}.tgz",
            "files": {f: hashlib.sha256((Path(dest) / f).read_bytes()).hexdigest() for f in files}}
(Path(dest) / "MANIFEST.json").write_text(json.dumps(manifest, indent=2) + "\n")
PY
echo "vendored onnxruntime-web $version ($integrity) into $dest"
