#!/usr/bin/env bash
# System packages some tests need: a PostgreSQL server (the tests marked `postgres` start a
# throwaway one on 127.0.0.1) and Chromium (the tests marked `chromium` open the HTML report
# in headless Chromium) and Prometheus (the tests marked `prometheus` run its server and
# promtool against the alert rules generated from scenarios' SLOs).
#
# A missing one is installed with apt when we are root and apt-get exists (as in CI); an apt
# failure is an error. Otherwise the script says which tests will be skipped and how to
# install the package, and exits 0: pytest skips those tests, with the reason.
#
# POSTGRES_GLOB, CHROMIUM_BIN and PROMETHEUS_BIN say where to look (tests/conftest.py reads the same ones).
set -euo pipefail

POSTGRES_GLOB=${POSTGRES_GLOB:-/usr/lib/postgresql/*/bin/postgres}
CHROMIUM_BIN=${CHROMIUM_BIN:-/usr/bin/chromium}
PROMETHEUS_BIN=${PROMETHEUS_BIN:-/usr/bin/prometheus}

find_missing() {
    missing=()
    compgen -G "$POSTGRES_GLOB" >/dev/null || missing+=(postgresql)
    [ -x "$CHROMIUM_BIN" ] || missing+=(chromium)
    # The package ships promtool beside the server.
    { [ -x "$PROMETHEUS_BIN" ] && [ -x "${PROMETHEUS_BIN%/*}/promtool" ]; } || missing+=(prometheus)
}

find_missing
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    for package in "${missing[@]}"; do
        case $package in
            postgresql) tests="the tests marked postgres"; binary=$POSTGRES_GLOB ;;
            chromium) tests="the tests marked chromium"; binary=$CHROMIUM_BIN ;;
            prometheus) tests="the tests marked prometheus"; binary=$PROMETHEUS_BIN ;;
        esac
        echo "install-system-deps: $package not installed (no $binary) and not installable here" \
            "(needs root and apt-get): $tests will be skipped; to run them: sudo apt-get install $package" >&2
    done
    exit 0
fi

echo "install-system-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

find_missing
if [ ${#missing[@]} -ne 0 ]; then
    echo "install-system-deps: apt installed ${missing[*]} but did not provide the binaries" \
        "(POSTGRES_GLOB=$POSTGRES_GLOB, CHROMIUM_BIN=$CHROMIUM_BIN, PROMETHEUS_BIN=$PROMETHEUS_BIN)" >&2
    exit 1
fi
