#!/usr/bin/env bash
# Installs what the tests need beyond the .NET SDK: Debian's python3-torch (PyTorch 1.13) and python3-numpy,
# the reference for numerics and .pt interop. Runs apt-get as root, or through sudo when available.
set -euo pipefail

if /usr/bin/python3 -c "import torch, numpy" >/dev/null 2>&1; then
    echo "python3-torch and python3-numpy are installed."
    exit 0
fi

if [[ "$(id -u)" -eq 0 ]]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
else
    echo "error: python3-torch is missing and installing it needs root; run: apt-get install python3-torch python3-numpy" >&2
    exit 1
fi

echo "Installing python3-torch and python3-numpy with apt-get (about 70 s)."
"${as_root[@]}" apt-get update -q
DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -q --no-install-recommends python3-torch python3-numpy
/usr/bin/python3 -c "import torch; print('torch', torch.__version__)"
