// SPDX-License-Identifier: Apache-2.0
// docs/guides/sizing-and-eviction.md: the bound, the policy, and a memory budget.
#include <larder/larder.h>

#include <cstdio>
#include <string>

#include "guide.h"

using guide::ensure;
using namespace std::chrono_literals;

// snippet:sizing:begin
// A hot set read often, then a one-off scan of ten times the capacity (a
// report, a crawler). How much of the hot set is still cached afterwards?
int hot_keys_kept(larder::EvictionPolicy policy) {
  auto cache = larder::make_local_cache<int, int>(
      {.max_entries = 1'000, .shards = 1, .policy = policy},
      {.loader = [](int k) -> absl::StatusOr<int> { return k; }});
  for (int round = 0; round < 20; ++round) {
    for (int k = 0; k < 200; ++k) (void)cache.get(k);  // the hot set: 200 keys
  }
  for (int k = 1'000'000; k < 1'010'000; ++k) (void)cache.get(k);  // the scan
  int kept = 0;
  for (int k = 0; k < 200; ++k) kept += cache.get_if_present(k).has_value();
  ensure(cache.estimated_size() <= 1'000, "never more than max_entries");
  ensure(cache.stats().evictions >= 9'000, "evictions are counted");
  return kept;
}

// A memory budget instead of a count: max_weight in bytes, with bytes_weigher.
void memory_budget() {
  auto pages = larder::make_local_cache<int, std::string>(
      {.max_entries = 2'000,    // the expected count: sizes the frequency sketch
       .max_weight = 1 << 20},  // 1 MiB for keys, values and per-entry overhead
      {.loader = [](int) -> absl::StatusOr<std::string> { return std::string(4'000, 'x'); }},
      {.weigher = larder::bytes_weigher<int, std::string>()});
  for (int k = 0; k < 2'000; ++k) (void)pages.get(k);  // 8 MB asked for
  ensure(pages.estimated_size() > 200 && pages.estimated_size() < 260, "1 MiB holds ~250 of them");
}
// snippet:sizing:end

int main() {
  const int tinylfu = hot_keys_kept(larder::EvictionPolicy::kAdaptiveTinyLfu);
  const int lru = hot_keys_kept(larder::EvictionPolicy::kLru);
  std::printf("hot keys kept after the scan: W-TinyLFU %d of 200, LRU %d of 200\n", tinylfu, lru);
  ensure(tinylfu >= 180, "W-TinyLFU keeps the hot set through the scan");
  ensure(lru == 0, "LRU loses all of it");
  memory_budget();
  std::puts("sizing and eviction: ok");
  return 0;
}
