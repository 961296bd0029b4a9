#!/usr/bin/env bash
# Installs what the tests need (Debian's chromium for the browser tests, coturn for the TURN test,
# redis-server and nginx for the cluster and HLS cache tests, ffmpeg (ffprobe) for the HLS files,
# Node.js and TypeScript for the web pages) and runs them all:
# ruff, mypy, tsc (the pages' JSDoc types), then pytest. Extra arguments go to pytest,
# e.g. ./scripts/test.sh -k relay
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
apt_need chromium coturn redis-server nginx ffmpeg \
  gir1.2-gst-rtsp-server-1.0 gir1.2-gstreamer-1.0 python3-gi gstreamer1.0-plugins-base gstreamer1.0-plugins-good \
  gstreamer1.0-plugins-ugly gstreamer1.0-plugins-bad gstreamer1.0-libav
venv_install "test"
npm_install
cd "$ROOT"
echo "==> ruff"
"$VENV/bin/ruff" check broadcast signaling tests bench
echo "==> mypy"
"$VENV/bin/mypy"
echo "==> tsc (web/)"
node_modules/.bin/tsc -p tsconfig.json
echo "==> pytest"
exec "$VENV/bin/python" -m pytest "$@"
