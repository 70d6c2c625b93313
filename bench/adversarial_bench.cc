// SPDX-License-Identifier: Apache-2.0
//
// LocalStore under adversarial keys (issue 16, "memory bounds that hold"):
// reads and memory when the keys were chosen to collide in one shard's index
// and frequency sketch (tests/testing/adversarial_keys.h: a known Hash, keys
// precomputed against the store's public mixing), against random keys, in
// the same run.
//
// BM_AdversarialKeys/<salted>: two stores of 65,536 entries (16 shards,
// u64 -> u64, Hash = identity). Each first sees a scan of 10x its capacity in
// one-hit random keys, then 4x its capacity of attack keys, each requested
// (get, put on a miss) twice: random keys for the baseline store, colliding
// keys for the other. Then 65,536 gets of the attack keys (hits and misses)
// are timed. Counters:
//   ns_get_random, ns_get_adversarial, read_ratio (adversarial / random)
//   bytes_random, bytes_adversarial (mallinfo2 heap delta of the whole
//     store), mem_ratio (adversarial / random; the target is <= 1.10)
//   size_* (entries held; the bound is 65,536)
// /0: LocalStoreOptions::hash_seed = 0, the unsalted hash (the keys collide:
//     what larder did before the seed); /1: the default random seed.
//
// Run: build/release/bench/adversarial_bench --benchmark_counters_tabular=true
#include <malloc.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <vector>

#include "benchmark/benchmark.h"
#include "larder/local_store.h"
#include "tests/testing/adversarial_keys.h"

namespace {

using Store = larder::LocalStore<std::uint64_t, std::uint64_t, larder::testing::KnownHash>;
constexpr std::size_t kCap = 1 << 16;
constexpr std::size_t kShards = 16;

std::size_t heap_in_use() {
  const struct mallinfo2 mi = mallinfo2();
  return mi.uordblks + mi.hblkhd;
}

struct Result {
  double ns_per_get = 0;
  double bytes = 0;
  double size = 0;
};

Result run(const std::vector<std::uint64_t>& attack, std::optional<std::uint64_t> seed) {
  const larder::Entry<std::uint64_t> e{1, larder::TimePoint::max(), larder::TimePoint::max()};
  const std::size_t before = heap_in_use();
  auto store = std::make_unique<Store>(
      larder::LocalStoreOptions{.max_entries = kCap, .shards = kShards, .hash_seed = seed});
  std::mt19937_64 rng(99);
  for (std::size_t i = 0; i < 10 * kCap; ++i) (void)store->put(rng(), e);
  for (int round = 0; round < 2; ++round) {
    for (std::uint64_t k : attack) {
      if (!store->get(k)->has_value()) (void)store->put(k, e);
    }
  }
  store->cleanup();
  const std::size_t after = heap_in_use();
  constexpr std::size_t kGets = 1 << 16;
  std::uint64_t found = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (std::size_t i = 0; i < kGets; ++i) {
    found += store->get(attack[(i * 7919) % attack.size()])->has_value();
  }
  const auto t1 = std::chrono::steady_clock::now();
  benchmark::DoNotOptimize(found);
  Result r;
  r.ns_per_get = std::chrono::duration<double, std::nano>(t1 - t0).count() / kGets;
  r.bytes = static_cast<double>(after - before);
  r.size = static_cast<double>(store->size());
  return r;
}

void BM_AdversarialKeys(benchmark::State& state) {
  const std::optional<std::uint64_t> seed =
      state.range(0) == 0 ? std::optional<std::uint64_t>(0) : std::nullopt;
  const std::vector<std::uint64_t> colliding = larder::testing::colliding_keys(4 * kCap, kShards);
  std::vector<std::uint64_t> random(4 * kCap);
  std::mt19937_64 rng(5);
  for (auto& k : random) k = rng();
  for (auto _ : state) {
    const Result base = run(random, seed);
    const Result adv = run(colliding, seed);
    state.counters["ns_get_random"] = base.ns_per_get;
    state.counters["ns_get_adversarial"] = adv.ns_per_get;
    state.counters["read_ratio"] = adv.ns_per_get / base.ns_per_get;
    state.counters["bytes_random"] = base.bytes;
    state.counters["bytes_adversarial"] = adv.bytes;
    state.counters["mem_ratio"] = adv.bytes / base.bytes;
    state.counters["size_random"] = base.size;
    state.counters["size_adversarial"] = adv.size;
  }
}
BENCHMARK(BM_AdversarialKeys)->Arg(0)->Arg(1)->Iterations(1)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
