#!/usr/bin/env bash
# System packages the tests need: a PostgreSQL server (the catalog-on-PostgreSQL tests
# start a throwaway one on 127.0.0.1) and Chromium (the HTML report test opens the report
# in headless Chromium). Installed with apt when missing and we are root.
set -euo pipefail

have_postgres() {
    compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null
}

have_chromium() {
    [ -x /usr/bin/chromium ]
}

missing=()
have_postgres || missing+=(postgresql)
have_chromium || missing+=(chromium)

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    echo "install-system-deps: missing ${missing[*]}; install them with your package manager" >&2
    exit 1
fi
echo "install-system-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
