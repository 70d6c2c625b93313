#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Runs the chaos soak for a while and prints its summary: operations by kind,
# faults injected by kind, violations (must be 0).
#   scripts/soak.sh MINUTES [PRESET]      (PRESET: dev by default)
# Configures the preset if needed. Needs redis-server on PATH.
set -euo pipefail

cd "$(dirname "$0")/.."
source scripts/soak_ci.sh
if (($# < 1)); then
  echo "usage: scripts/soak.sh MINUTES [PRESET]" >&2
  exit 2
fi
minutes=$1
preset=${2:-dev}
if [[ ! -f build/$preset/build.ninja ]]; then
  cmake --preset "$preset" >/dev/null
fi
larder_soak_run "$preset" "$(( minutes * 60 ))"
