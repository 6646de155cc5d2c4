#!/usr/bin/env bash
# Installs the test prerequisites, then builds and runs every test (unit, multi-silo cluster, Azure Storage cluster
# mode on Azurite, PyTorch interop). Installing needs apt-get and the npm registry once; later runs work offline.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-test-deps.sh

# Azurite goes into .tools/azurite; each Azure Storage test class starts its own instance on free ports.
scripts/azurite.sh install
dotnet test Orleans.Optim.sln -c Release --logger "console;verbosity=normal" "$@"
