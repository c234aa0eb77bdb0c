#!/usr/bin/env bash
# One command: peer setup (nginx + STAC API + venv + world), tilestack release build,
# agreement with stackstac (Goal A) and the side-by-side benchmark (Goal B).
#   bench/run.sh [WORK_DIR]          # default target/peer
# Env: CARGO_TARGET_DIR (where the release binary is built), TILESTACK_BIN (use this binary, skip the build),
#      SKIP_BENCH=1 (agreement only), KEEP_SERVERS=1 (leave nginx/STAC API running).
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
cd "$REPO"
WORK="${1:-$REPO/target/peer}"
bench/peer_setup.sh "$WORK"
WORK="$(cd "$WORK" && pwd)"
PY="$WORK/venv/bin/python"
if [ -z "${TILESTACK_BIN:-}" ]; then
  cargo build --release --features cli --bin tilestack
  TILESTACK_BIN="${CARGO_TARGET_DIR:-$REPO/target}/release/tilestack"
fi
[ "${KEEP_SERVERS:-0}" = 1 ] || trap 'bench/peer_setup.sh stop "$WORK"' EXIT
rc=0
"$PY" bench/compare_stackstac.py --work "$WORK" --bin "$TILESTACK_BIN" --json "$WORK/compare.json" || rc=$?
if [ "${SKIP_BENCH:-0}" != 1 ]; then
  "$PY" bench/bench_tilestack.py --work "$WORK" --bin "$TILESTACK_BIN"
fi
exit $rc
