#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Runs the chaos soak for a while and prints its summary: the seed,
# operations by kind, faults injected by kind (sigkill among them: the
# write-back child killed and restarted on its journal), the SIGKILL phase's
# recoveries and acknowledged puts, violations (must be 0).
#   scripts/soak.sh MINUTES [PRESET]      (PRESET: dev by default)
# Configures the preset if needed. Needs redis-server on PATH (the soak starts
# its own). LARDER_SOAK_SEED=N replays a run's fault schedule. On a shared
# machine run it at low priority: nice -n 10 scripts/soak.sh 30
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
start=$(date -u +%s)
echo "soak: scripts/soak.sh $minutes $preset, started $(date -u '+%Y-%m-%d %H:%M:%S') UTC," \
  "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
rc=0
larder_soak_run "$preset" "$(( minutes * 60 ))" || rc=$?
echo "soak: wall time $(( $(date -u +%s) - start )) s, exit $rc"
exit "$rc"
