// SPDX-License-Identifier: Apache-2.0
//
// policy_bench: the cost of EvictionPolicyCore alone (no LocalStore, no
// locks, no read buffers), per policy kind, to see what the adaptive policy's
// shadows add to each recorded access.
//
//   BM_PolicyHit/<kind>    on_access over a 1024-key loop in a policy of
//                          4096 entries: the hit path of a small store,
//                          where the shadows simulate every key.
//   BM_PolicyMiss/<kind>   on_insert + evict on Zipf(0.9)-ish keys over 64k
//                          keys with 1024 entries: the miss path (each miss
//                          is one insert and one eviction, in the shadows too).
//   BM_PolicyHitLarge/<kind>  as BM_PolicyHit with 1M entries expected: the
//                          shadows sample ~1/1000 of the keys.
//
//   BM_StoreGetPolicy/<kind>  LocalStore::get (one thread) over a 1024-key
//                          loop of string keys, max_entries 4096, as
//                          cache_bench's BM_StoreGet but per policy: what a
//                          recorded access costs through the read buffer.
//
// kind: 0 kAdaptiveTinyLfu, 1 kTinyLfu, 2 kLru.
// Run: build/release/bench/policy_bench --benchmark_min_time=0.5
#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "larder/internal/eviction_policy.h"
#include "larder/local_store.h"

namespace {

using larder::internal::EvictionPolicyCore;
using larder::internal::PolicyHook;
using larder::internal::PolicyKind;

PolicyKind kind_of(const benchmark::State& state) {
  return static_cast<PolicyKind>(state.range(0));
}

std::uint32_t hash_of(std::uint64_t k) {
  std::uint64_t x = k + 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  x ^= x >> 31;
  return static_cast<std::uint32_t>(x ^ (x >> 32));
}

void run_hits(benchmark::State& state, std::uint64_t maximum, std::uint64_t expected) {
  constexpr std::size_t kKeys = 1024;
  EvictionPolicyCore p(kind_of(state), maximum, expected);
  std::vector<PolicyHook> nodes(kKeys);
  for (std::size_t i = 0; i < kKeys; ++i) {
    nodes[i].hash = hash_of(i);
    p.on_insert(&nodes[i]);
    p.evict([](PolicyHook*) {});
  }
  std::size_t i = 0;
  for (auto _ : state) {
    p.on_access(&nodes[i++ & (kKeys - 1)]);
  }
  benchmark::DoNotOptimize(p.weighted_size());
}

void BM_PolicyHit(benchmark::State& state) { run_hits(state, 4096, 4096); }
BENCHMARK(BM_PolicyHit)->Arg(0)->Arg(1)->Arg(2);

void BM_PolicyHitLarge(benchmark::State& state) { run_hits(state, 1 << 20, 1 << 20); }
BENCHMARK(BM_PolicyHitLarge)->Arg(0)->Arg(1)->Arg(2);

void BM_PolicyMiss(benchmark::State& state) {
  constexpr std::uint64_t kCapacity = 1024;
  constexpr std::size_t kKeys = 1 << 16;
  constexpr std::size_t kTrace = 1 << 16;
  // A skewed key stream (inverse power law) so some requests hit.
  std::mt19937_64 rng(1);
  std::vector<std::uint32_t> trace(kTrace);
  for (auto& k : trace) {
    const double u = std::uniform_real_distribution<double>(0, 1)(rng);
    k = static_cast<std::uint32_t>(std::pow(static_cast<double>(kKeys), u)) - 1;
  }
  EvictionPolicyCore p(kind_of(state), kCapacity, kCapacity);
  std::vector<PolicyHook> nodes(kKeys);
  for (std::size_t i = 0; i < kKeys; ++i) nodes[i].hash = hash_of(i);
  std::size_t i = 0;
  std::int64_t misses = 0;
  for (auto _ : state) {
    PolicyHook* n = &nodes[trace[i++ & (kTrace - 1)]];
    if (n->queue != larder::internal::PolicyQueue::kNone) {
      p.on_access(n);
    } else {
      ++misses;
      p.on_insert(n);
      p.evict([](PolicyHook*) {});
    }
  }
  state.counters["miss%"] = benchmark::Counter(100.0 * static_cast<double>(misses) /
                                               static_cast<double>(state.iterations()));
}
BENCHMARK(BM_PolicyMiss)->Arg(0)->Arg(1)->Arg(2);

void BM_StoreGetPolicy(benchmark::State& state) {
  constexpr std::size_t kKeys = 1024;
  static const larder::EvictionPolicy kPolicies[] = {larder::EvictionPolicy::kAdaptiveTinyLfu,
                                                     larder::EvictionPolicy::kTinyLfu,
                                                     larder::EvictionPolicy::kLru};
  larder::LocalStore<std::string, std::string> store(
      {.max_entries = 4096, .policy = kPolicies[state.range(0)]});
  std::vector<std::string> keys;
  for (std::size_t i = 0; i < kKeys; ++i) {
    keys.push_back("key-" + std::to_string(i));
    (void)store.put(keys.back(), larder::Entry<std::string>{"value", larder::TimePoint::max(),
                                                            larder::TimePoint::max()});
  }
  std::size_t i = 0;
  for (auto _ : state) {
    auto got = store.get(keys[i++ & (kKeys - 1)]);
    benchmark::DoNotOptimize(got);
  }
}
BENCHMARK(BM_StoreGetPolicy)->Arg(0)->Arg(1)->Arg(2);

}  // namespace

BENCHMARK_MAIN();
