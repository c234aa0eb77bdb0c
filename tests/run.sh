#!/usr/bin/env bash
# The test command: installs the independent checkers (GDAL via rasterio,
# rio-cogeo, PROJ via pyproj; moto's S3 server) from PyPI when missing, then
# runs every test with every feature but the GPU backends (`cuda`, `wgpu`:
# the trainer's alternatives to the CPU backend the tests use; `cuda`
# downloads LLVM when it builds). Arguments go to the integration-test binary: .ci/run,
# which starts a pgstac server first, passes --include-ignored so the tests
# that need that server run (a plain run lists them as ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! python3 -c "import rasterio, rio_cogeo, pyproj, moto.server, flask, safetensors, zarr, numcodecs, xarray" 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check -r tests/py/requirements.txt
fi
cargo test --features cli,burn --lib --bins --examples --benches
cargo test --features cli,burn --test it -- "$@"
# Its own binary: a counting global allocator measures a stack's heap peak.
cargo test --features cli,burn --test memory -- "$@"
cargo test --features cli,burn --doc
