#!/usr/bin/env bash
# The test command: installs the independent checkers (GDAL via rasterio,
# rio-cogeo; moto's S3 server) from PyPI when missing, then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! python3 -c "import rasterio, rio_cogeo, moto.server, flask" 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check -r tests/py/requirements.txt
fi
cargo test --all-targets --features burn "$@"
cargo test --doc --features burn
