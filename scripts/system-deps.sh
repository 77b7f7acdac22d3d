#!/usr/bin/env bash
# Installs the Debian packages that are missing. `run`: the SQLite headers (the server links the system
# libsqlite3) and Python. `test`: those, PHP with cURL (docs/api.md's PHP example runs in the tests, as PHP
# clients send it), Chromium with its WebDriver (the web pages are tested in a real headless browser), and jq and
# Node for docs/dialects.md's examples.
# Needs root for apt-get; says what to install otherwise.
set -euo pipefail
mode=${1:-run}
need=()
[ -f /usr/include/sqlite3.h ] || need+=(libsqlite3-dev)
command -v python3 >/dev/null || need+=(python3 python3-venv)
if [ "$mode" = test ]; then
  command -v php >/dev/null || need+=(php-cli)
  php -m 2>/dev/null | grep -qi '^curl$' || need+=(php-curl)
  command -v chromium >/dev/null || need+=(chromium)
  command -v chromedriver >/dev/null || need+=(chromium-driver)
  # docs/dialects.md's examples: curl piped to jq, and Node's fetch (Node 18+).
  command -v jq >/dev/null || need+=(jq)
  command -v node >/dev/null || need+=(nodejs)
fi
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "missing Debian packages: ${need[*]}; install them with: sudo apt-get install ${need[*]}" >&2
  exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
