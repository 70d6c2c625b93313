#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Builds the release preset and runs examples/quickstart: cache-aside on the
# in-process store, no server needed. Installs what is missing first.
set -euo pipefail

cd "$(dirname "$0")/.."
source scripts/common.sh
larder_install_missing

cmake --preset release >/dev/null
cmake --build --preset release --target quickstart -j "$(nproc)" >/dev/null
./build/release/examples/quickstart
