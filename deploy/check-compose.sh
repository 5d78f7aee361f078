#!/usr/bin/env bash
# Validates deploy/docker-compose.yml without a Docker daemon: the default set
# (postgres + rabbitmq, what the tests use) and the full `lijian` profile.
# Machines without Compose skip the check instead of failing, because the tests
# never need Compose.
set -euo pipefail
cd "$(dirname "$0")/.."

if docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
  compose=(docker-compose)
else
  echo "check-compose: skipped, neither 'docker compose' nor 'docker-compose' is installed"
  exit 0
fi

file=deploy/docker-compose.yml
"${compose[@]}" -f "$file" config -q
"${compose[@]}" -f "$file" --profile lijian config -q
echo "check-compose: $file is valid (default services and --profile lijian) with ${compose[*]}"
