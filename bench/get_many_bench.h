// SPDX-License-Identifier: Apache-2.0
//
// get_many_bench.h: the warm-batch loop that cache_bench (over LocalStore)
// and redis_bench (over RedisStore) both time: one Cache::get_many of keys
// already cached, through the map result or the aligned one. The loader
// fails, so a key that is not a hit ends the benchmark with an error
// instead of timing a load.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "benchmark/benchmark.h"

namespace larder_bench {

// run_get_many: times cache.get_many (kAligned false: the map result) or
// cache.get_many_aligned (true: a slot per key) of `keys`, every one a hit.
template <bool kAligned, class C>
void run_get_many(benchmark::State& state, C& cache, const std::vector<std::string>& keys) {
  auto load = [](std::span<const std::string>) {
    return absl::StatusOr<absl::flat_hash_map<std::string, std::string>>(
        absl::InternalError("the bench reads hits only"));
  };
  for (auto _ : state) {
    bool all = false;
    if constexpr (kAligned) {
      auto got = cache.get_many_aligned(keys, load);
      all = got.ok() && got.size() == keys.size() && got[keys.size() - 1].has_value();
      benchmark::DoNotOptimize(got);
    } else {
      auto got = cache.get_many(keys, load);
      all = got.ok() && got->size() == keys.size();
      benchmark::DoNotOptimize(got);
    }
    if (!all) {
      state.SkipWithError("get_many failed");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(keys.size()));
}

}  // namespace larder_bench
