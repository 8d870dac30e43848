#!/bin/sh
# Installs what fleet, its lab and its tests need on a Debian machine, as root:
# Debian packages, then a virtualenv in .venv with fleet and its dev tools.
set -eu
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "bootstrap: run as root (the lab needs network namespaces, sshd and dockerd)" >&2
    exit 1
fi

# chromium: the report page is checked in a real browser (tests/e2e/test_report.py).
PACKAGES="docker.io openssh-server openssh-client docker-registry busybox-static iproute2 python3-venv docker-compose ansible-core chromium"
missing=""
for package in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
        || missing="$missing $package"
done
if [ -n "$missing" ]; then
    echo "bootstrap: apt-get install$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
# The Debian packages start daemons of their own in the root namespace; the lab doesn't use them.
for unit in docker.service docker.socket docker-registry.service; do
    systemctl disable --now "$unit" >/dev/null 2>&1 || true
done

# The lab's proxy image holds Debian's caddy binary. The package is only downloaded and
# unpacked (installed, it would start a Caddy of its own on port 80 of this machine).
CADDY_ROOT=/var/cache/fleet-lab/caddy
if [ ! -x "$CADDY_ROOT/usr/bin/caddy" ]; then
    echo "bootstrap: unpacking Debian's caddy for the lab's proxy image"
    download=$(mktemp -d)
    (cd "$download" && apt-get download -qq caddy >/dev/null 2>&1) \
        || { apt-get update -qq && (cd "$download" && apt-get download -qq caddy >/dev/null); }
    mkdir -p "$CADDY_ROOT"
    dpkg-deb -x "$download"/caddy_*.deb "$CADDY_ROOT"
    rm -rf "$download"
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[dev]'
# Byte-compile fleet as a wheel install would (an editable install doesn't): with
# PYTHONDONTWRITEBYTECODE set, every command would otherwise compile its modules again.
.venv/bin/python -m compileall -q fleet >/dev/null
