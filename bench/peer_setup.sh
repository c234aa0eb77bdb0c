#!/usr/bin/env bash
# Set up the Python peer benchmark (../shared/peer) next to tilestack, idempotently:
#   bench/peer_setup.sh [WORK_DIR]        # default target/peer
#   bench/peer_setup.sh stop [WORK_DIR]   # stop nginx + STAC API
# Installs nginx-light (apt) and time (apt) if missing, a venv at WORK_DIR/venv with the peer's
# Python stack (pinned versions as measured in ../shared/peer/README.md, unpinned fallback),
# generates the peer world once into WORK_DIR/world, and starts nginx on 127.0.0.1:8089 and the
# minimal STAC API on 127.0.0.1:8090 with ../shared/peer/serve.sh (run dir WORK_DIR/run).
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
PEER="$REPO/../shared/peer"
[ -d "$PEER" ] || { echo "peer directory not found: $PEER" >&2; exit 2; }
PEER="$(cd "$PEER" && pwd)"

if [ "${1:-}" = "stop" ]; then
  WORK="${2:-$REPO/target/peer}"
  [ -d "$WORK/run" ] && "$PEER/serve.sh" stop "$WORK/run"
  echo "peer servers stopped"
  exit 0
fi
WORK="${1:-$REPO/target/peer}"
mkdir -p "$WORK"
WORK="$(cd "$WORK" && pwd)"
log() { echo "[peer_setup] $*"; }

# ---- system packages -------------------------------------------------------------------------
apt_install() {
  local missing=("$@")
  apt-get install -y "${missing[@]}" >/dev/null 2>&1 || { apt-get update >/dev/null 2>&1; apt-get install -y "${missing[@]}" >/dev/null; }
}
need=()
command -v nginx >/dev/null 2>&1 || need+=(nginx-light)
[ -x /usr/bin/time ] || need+=(time)
command -v curl >/dev/null 2>&1 || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then log "apt-get install ${need[*]}"; apt_install "${need[@]}"; fi
# Debian's nginx package starts a system nginx on port 80; the benchmark does not need it.

# ---- Python venv --------------------------------------------------------------------------------
PY="$WORK/venv/bin/python"
PINNED=(stackstac==0.5.1 rasterio==1.4.4 numpy==2.4.6 xarray==2026.9.0 dask==2026.8.0 pandas==2.3.3
        pystac pystac-client==0.9.1 shapely==2.2.0 pyproj==3.7.2 safetensors)
if ! "$PY" -c 'import stackstac, rasterio, numpy, xarray, dask, pandas, pystac, pystac_client, shapely, pyproj' 2>/dev/null; then
  log "creating venv $WORK/venv"
  python3 -m venv "$WORK/venv"
  "$PY" -m pip install -q --upgrade pip >/dev/null
  if ! "$PY" -m pip install -q "${PINNED[@]}"; then
    log "WARNING: pinned install failed; installing per package, unpinned where the pin fails"
    for spec in "${PINNED[@]}"; do
      "$PY" -m pip install -q "$spec" || { log "WARNING: pin $spec failed -> unpinned ${spec%%==*}"; "$PY" -m pip install -q "${spec%%==*}"; }
    done
  fi
fi
"$PY" - <<'PYEOF'
import importlib
mods = ["stackstac", "rasterio", "numpy", "xarray", "dask", "pandas", "pystac_client", "shapely", "pyproj"]
print("[peer_setup] versions:", ", ".join(f"{m} {importlib.import_module(m).__version__}" for m in mods))
PYEOF

# ---- world --------------------------------------------------------------------------------------
if [ ! -f "$WORK/world/manifest.json" ]; then
  log "generating the peer world into $WORK/world (~3 min)"
  rm -rf "$WORK/world.tmp"
  "$PY" "$PEER/make_world.py" "$WORK/world.tmp" --jobs 2
  rm -rf "$WORK/world"; mv "$WORK/world.tmp" "$WORK/world"
else
  log "world cached: $WORK/world"
fi

# ---- servers ------------------------------------------------------------------------------------
up() { curl -s -o /dev/null -w '%{http_code}' "$@" 2>/dev/null || true; }
if [ "$(up -H 'Range: bytes=0-15' http://127.0.0.1:8089/collection.json)" = 206 ] && \
   [ "$(up http://127.0.0.1:8090/)" = 200 ]; then
  log "servers already up (nginx :8089, STAC API :8090)"
else
  "$PEER/serve.sh" stop "$WORK/run" >/dev/null 2>&1 || true
  sleep 0.5
  PY="$PY" "$PEER/serve.sh" start "$WORK/world" "$WORK/run"
  [ "$(up -H 'Range: bytes=0-15' http://127.0.0.1:8089/collection.json)" = 206 ] || { echo "nginx did not come up; see $WORK/run/logs" >&2; exit 1; }
  [ "$(up http://127.0.0.1:8090/)" = 200 ] || { echo "STAC API did not come up; see $WORK/run/logs" >&2; exit 1; }
fi
log "ready: WORK=$WORK  python=$PY  access log=$WORK/run/logs/access.log"
