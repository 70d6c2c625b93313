# SPDX-License-Identifier: Apache-2.0
# Shared by scripts/test.sh and scripts/demo.sh: install what is missing.

LARDER_PACKAGES=(cmake ninja-build g++ pkg-config ccache libabsl-dev libgtest-dev libgmock-dev
                 libbenchmark-dev libhiredis-dev redis-server redis-sentinel redis-tools libtbb-dev zlib1g-dev
                 clang-14 libclang-rt-14-dev  # clang-14 + libclang-rt: the fuzz preset
                 postgresql libpqxx-dev  # the PostgreSQL example, tests/pg, bench/pg_bench
                 prometheus-cpp-dev  # larder::prometheus, examples/metrics, tests/prometheus
                 python3-matplotlib)  # scripts/report.sh: the charts of docs/benchmarks.md

# larder_install_missing: apt-get installs the packages above that are not
# installed yet; silent when everything is there.
larder_install_missing() {
  local missing=()
  local p
  for p in "${LARDER_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
      missing+=("$p")
    fi
  done
  if ((${#missing[@]} == 0)); then
    return 0
  fi
  echo "larder: installing ${missing[*]}"
  local sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null; then
      sudo=(sudo)
    else
      echo "larder: missing packages (${missing[*]}) and not root; install them and rerun" >&2
      return 1
    fi
  fi
  export DEBIAN_FRONTEND=noninteractive UCF_FORCE_CONFFOLD=1  # ucf keeps a config it finds
  # The tests start throwaway PostgreSQL servers of their own (scripts/pg.sh):
  # keep the postgresql package from creating and starting a system cluster.
  if [[ " ${missing[*]} " == *" postgresql "* && ! -e /etc/postgresql-common/createcluster.conf ]]; then
    "${sudo[@]}" mkdir -p /etc/postgresql-common
    echo "create_main_cluster = false" | "${sudo[@]}" tee /etc/postgresql-common/createcluster.conf >/dev/null
  fi
  "${sudo[@]}" apt-get update -qq >/dev/null
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
