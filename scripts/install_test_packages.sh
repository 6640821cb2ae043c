#!/usr/bin/env bash
# Debian packages the tests need: Chromium and its WebDriver (UI tests), docker-compose (the deployment file is
# checked with `docker-compose config`) and PostgreSQL (a throwaway server for Dagster's Postgres storage).
# Idempotent: installs only what is missing, and runs `apt-get update` once, only when something is missing.
set -euo pipefail

packages=(chromium chromium-driver docker-compose postgresql)

installed() {
  [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]
}

missing=()
for package in "${packages[@]}"; do
  installed "$package" || missing+=("$package")
done

if ((${#missing[@]} == 0)); then
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo >/dev/null 2>&1; then
    echo "missing Debian packages: ${missing[*]}; not root and no sudo: install them as root" >&2
    exit 1
  fi
  sudo="sudo"
fi

echo "installing Debian packages for the tests: ${missing[*]}"
$sudo apt-get update -qq
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
