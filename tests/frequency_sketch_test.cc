// SPDX-License-Identifier: Apache-2.0
#include "larder/internal/frequency_sketch.h"

#include <cstdint>

#include "gtest/gtest.h"
#include "larder/local_store.h"

namespace larder::internal {
namespace {

TEST(FrequencySketchTest, CountsAndSaturates) {
  FrequencySketch s(512);
  const std::uint64_t h = mix_hash(42);
  EXPECT_EQ(s.frequency(h), 0);
  for (int i = 0; i < 5; ++i) s.increment(h);
  EXPECT_EQ(s.frequency(h), 5);
  for (int i = 0; i < 50; ++i) s.increment(h);
  EXPECT_EQ(s.frequency(h), 15);
}

TEST(FrequencySketchTest, HeavyHittersStandOut) {
  FrequencySketch s(1024);
  for (std::uint64_t k = 0; k < 1000; ++k) s.increment(mix_hash(k));
  for (int i = 0; i < 8; ++i) s.increment(mix_hash(7));
  EXPECT_GE(s.frequency(mix_hash(7)), 8);
  int overestimated = 0;
  for (std::uint64_t k = 100; k < 1000; ++k) overestimated += s.frequency(mix_hash(k)) > 2;
  EXPECT_LT(overestimated, 20);
}

TEST(FrequencySketchTest, AgingHalvesCounts) {
  FrequencySketch s(16);  // sample size 160 increments
  const std::uint64_t hot = mix_hash(1);
  for (int i = 0; i < 12; ++i) s.increment(hot);
  EXPECT_EQ(s.frequency(hot), 12);
  for (std::uint64_t k = 1000; k < 1000 + s.sample_size(); ++k) s.increment(mix_hash(k));
  EXPECT_LE(s.frequency(hot), 6);
  EXPECT_GE(s.frequency(hot), 3);
}

// The block layout (tables of kBlockedFromWords words or more: one cache line
// per key) counts, saturates, separates heavy hitters and ages the same way.
TEST(FrequencySketchTest, BlockLayoutBehavesLikeTheSpreadOne) {
  const std::uint64_t n = FrequencySketch::kBlockedFromWords;
  FrequencySketch s(n);
  ASSERT_TRUE(s.blocked());
  EXPECT_FALSE(FrequencySketch(n / 2).blocked());
  const std::uint64_t h = mix_hash(42);
  for (int i = 0; i < 5; ++i) s.increment(h);
  EXPECT_EQ(s.frequency(h), 5);
  for (int i = 0; i < 50; ++i) s.increment(h);
  EXPECT_EQ(s.frequency(h), 15);
  // A load of n distinct keys: few are overestimated.
  for (std::uint64_t k = 1000; k < 1000 + n; ++k) s.increment(mix_hash(k));
  int overestimated = 0;
  for (std::uint64_t k = 1000; k < 1000 + 10'000; ++k)
    overestimated += s.frequency(mix_hash(k)) > 2;
  EXPECT_LT(overestimated, 200);
  // Aging: sample_size increments halve every counter.
  const std::uint64_t hot = mix_hash(1);
  for (int i = 0; i < 12; ++i) s.increment(hot);
  const int before = s.frequency(hot);
  EXPECT_GE(before, 12);
  for (std::uint64_t k = 0; k < s.sample_size(); ++k) s.increment(mix_hash(k + (1ull << 40)));
  EXPECT_LE(s.frequency(hot), before / 2 + 1);
}

}  // namespace
}  // namespace larder::internal
