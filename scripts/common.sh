# Shared by demo.sh and test.sh: Debian packages and the project's virtual environment.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${ORCAST_VENV:-$ROOT/.venv}"

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# apt_need PKG...: installs the Debian/Ubuntu packages that are missing.
apt_need() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "==> installing Debian packages: ${missing[*]}"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

# npm_install: Node.js (from Debian when missing) and the project's npm parts, pinned by
# package-lock.json, into node_modules/: hls.js, which the pages load from /static/vendor/ (copied
# to web/vendor/), and TypeScript, which only checks web/ (nothing is built).
npm_install() {
  command -v npm >/dev/null 2>&1 || apt_need nodejs npm
  local stamp="$ROOT/node_modules/.orcast-installed"
  local want
  want="$(sha256sum "$ROOT/package-lock.json" | cut -d' ' -f1) $(node --version)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    echo "==> npm parts are installed (package-lock.json unchanged)"
  else
    echo "==> installing npm parts (hls.js, TypeScript) into node_modules/"
    (cd "$ROOT" && npm ci --no-audit --no-fund --loglevel=error)
    echo "$want" > "$stamp"
  fi
  mkdir -p "$ROOT/web/vendor"
  cp "$ROOT/node_modules/hls.js/dist/hls.min.mjs" "$ROOT/web/vendor/hls.min.mjs"
}

# venv_install EXTRA: creates .venv (if needed) and installs ORcast into it.
venv_install() {
  local extra="$1"
  if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "ORcast needs Python 3.11 or newer; this is $(python3 --version)." >&2
    exit 1
  fi
  if [ ! -x "$VENV/bin/python" ]; then
    echo "==> creating $VENV"
    if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
      # Debian/Ubuntu ship venv (ensurepip) separately from python3
      rm -rf "$VENV"
      apt_need python3-venv
      python3 -m venv "$VENV"
    fi
  fi
  # The install is editable: code changes need no reinstall, only a changed pyproject.toml
  # (or another set of extras) does. The stamp remembers what was installed.
  local stamp="$VENV/.orcast-installed${extra:+-$extra}"
  local want
  want="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1) $("$VENV/bin/python" --version 2>&1)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && (cd / && "$VENV/bin/python" -c 'import broadcast, signaling') 2>/dev/null; then
    echo "==> ORcast${extra:+ with [$extra]} is installed in $VENV (pyproject.toml unchanged)"
    return
  fi
  echo "==> installing ORcast${extra:+ with [$extra]} into $VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -e "$ROOT${extra:+[$extra]}"
  echo "$want" > "$stamp"
}
