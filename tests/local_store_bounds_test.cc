// SPDX-License-Identifier: Apache-2.0
//
// LocalStore's bounds under attack: keys chosen to collide in one shard's
// index and frequency sketch by someone who knows the hash
// (tests/testing/adversarial_keys.h), and scans of 10x the capacity in
// one-hit keys. The bound on entries and on weight holds exactly after every
// operation, and the weight held is exactly the sum of the entries' weights.
// (Read speed and memory under the same keys: bench/adversarial_bench.cc.)
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "larder/local_store.h"
#include "tests/testing/adversarial_keys.h"

namespace larder {
namespace {

using testing::colliding_keys;
using testing::KnownHash;
using Store = LocalStore<std::uint64_t, std::uint64_t, KnownHash>;

const Entry<std::uint64_t> kForever{0, TimePoint::max(), TimePoint::max()};

TEST(AdversarialKeys, CollideUnderTheUnseededMixing) {
  const auto keys = colliding_keys(1000, 4);
  ASSERT_EQ(keys.size(), 1000u);
  const std::uint32_t fold = internal::fold_hash(internal::mix_hash(KnownHash{}(keys[0])));
  for (std::uint64_t k : keys) {
    const std::uint64_t h = internal::mix_hash(KnownHash{}(k));
    EXPECT_EQ(internal::fold_hash(h), fold) << k;
    EXPECT_EQ(((h >> 32) * 4) >> 32, 0u) << k;  // shard 0 of 4
  }
  std::vector<std::uint64_t> sorted = keys;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(std::adjacent_find(sorted.begin(), sorted.end()), sorted.end()) << "keys repeat";
}

// Colliding keys, each requested a few times (they all share sketch counters,
// so the admission filter cannot tell them apart), then a scan of 10x the
// capacity in one-hit keys: the entry bound holds after every put.
TEST(LocalStoreBounds, EntryBoundHoldsUnderCollidingKeysAndScan) {
  for (EvictionPolicy policy :
       {EvictionPolicy::kAdaptiveTinyLfu, EvictionPolicy::kTinyLfu, EvictionPolicy::kLru}) {
    constexpr std::size_t kCap = 512;
    Store store({.max_entries = kCap, .shards = 4, .policy = policy});
    const auto keys = colliding_keys(4 * kCap, 4);
    for (int round = 0; round < 3; ++round) {
      for (std::uint64_t k : keys) {
        if (!store.get(k)->has_value()) {
          ASSERT_TRUE(store.put(k, {k, TimePoint::max(), TimePoint::max()}).ok());
        }
        ASSERT_LE(store.size(), kCap);
      }
    }
    std::mt19937_64 rng(7);
    for (std::size_t i = 0; i < 10 * kCap; ++i) {
      const std::uint64_t k = rng();
      ASSERT_FALSE(store.get(k)->has_value());
      ASSERT_TRUE(store.put(k, kForever).ok());
      ASSERT_LE(store.size(), kCap);
    }
    // Every colliding key still present is found (the long probe path works).
    std::size_t found = 0;
    for (std::uint64_t k : keys) {
      if (auto e = store.peek(k)) {
        EXPECT_EQ(e->value, k);
        ++found;
      }
    }
    EXPECT_LE(found, kCap);
    EXPECT_EQ(store.counters().size, store.size());
  }
}

// The weight bound, with weights the attacker also picks (large and small),
// holds after every put, and weight() is exactly the sum over present entries.
TEST(LocalStoreBounds, WeightBoundHoldsExactlyUnderCollidingKeysAndScan) {
  constexpr std::size_t kMaxWeight = 20'000;
  auto weigher = [](const std::uint64_t& k, const std::uint64_t&) -> std::size_t {
    return 1 + (k % 97);
  };
  Store store({.max_entries = 400, .max_weight = kMaxWeight, .shards = 4}, {.weigher = weigher});
  const auto keys = colliding_keys(4000, 4);
  std::vector<std::uint64_t> all = keys;
  for (int round = 0; round < 2; ++round) {
    for (std::uint64_t k : keys) {
      (void)store.get(k);
      ASSERT_TRUE(store.put(k, kForever).ok());
      ASSERT_LE(store.weight(), kMaxWeight);
    }
  }
  std::mt19937_64 rng(11);
  for (std::size_t i = 0; i < 4000; ++i) {
    const std::uint64_t k = rng();
    all.push_back(k);
    ASSERT_TRUE(store.put(k, kForever).ok());
    ASSERT_LE(store.weight(), kMaxWeight);
  }
  std::size_t sum = 0, n = 0;
  for (std::uint64_t k : all) {
    if (store.peek(k)) {
      sum += weigher(k, 0);
      ++n;
    }
  }
  EXPECT_EQ(store.weight(), sum);
  EXPECT_EQ(store.size(), n);
  EXPECT_EQ(store.counters().weight, sum);
}

}  // namespace
}  // namespace larder
