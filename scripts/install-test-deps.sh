#!/usr/bin/env bash
# Installs what the tests need beyond the .NET SDK with apt-get, as root or through sudo when available:
# Debian's python3-torch (PyTorch 1.13) and python3-numpy, the reference for numerics and .pt interop, and
# Node.js with npm, which install and run Azurite for the Azure Storage cluster tests (scripts/azurite.sh).
set -euo pipefail

packages=()
if /usr/bin/python3 -c "import torch, numpy" >/dev/null 2>&1; then
    echo "python3-torch and python3-numpy are installed."
else
    packages+=(python3-torch python3-numpy)
fi

if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
    echo "node $(node --version) and npm $(npm --version) are installed."
else
    packages+=(nodejs npm)
fi

if [[ ${#packages[@]} -eq 0 ]]; then
    exit 0
fi

if [[ "$(id -u)" -eq 0 ]]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
else
    echo "error: ${packages[*]} are missing and installing them needs root; run: apt-get install ${packages[*]}" >&2
    exit 1
fi

echo "Installing ${packages[*]} with apt-get (python3-torch takes about 70 s)."
"${as_root[@]}" apt-get update -q
DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -q --no-install-recommends "${packages[@]}"
if [[ " ${packages[*]} " == *" python3-torch "* ]]; then
    /usr/bin/python3 -c "import torch; print('torch', torch.__version__)"
fi
