#!/usr/bin/env bash
# Installs ORcast and starts the demo: the server plus a synthetic OR feed.
# Usage: ./scripts/demo.sh [orcast demo options, e.g. --port 8081]
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
venv_install ""
npm_install  # hls.js for the pages' HLS player
exec "$VENV/bin/orcast" demo "$@"
