#!/usr/bin/env bash
# Installs the test prerequisites, then builds and runs every test (unit, multi-silo cluster, PyTorch interop).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-test-deps.sh
dotnet test Orleans.Optim.sln -c Release --logger "console;verbosity=normal" "$@"
