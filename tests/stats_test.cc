// SPDX-License-Identifier: Apache-2.0
#include "larder/stats.h"

#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "larder/internal/striped_counter.h"

namespace larder {
namespace {

TEST(CacheStatsTest, HitRatioCountsStaleHitsAsServed) {
  CacheStats s;
  EXPECT_EQ(s.hit_ratio(), 0.0);
  s.hits = 6;
  s.stale_hits = 2;
  s.misses = 2;
  EXPECT_DOUBLE_EQ(s.hit_ratio(), 0.8);
  s.hits = s.stale_hits = 0;
  EXPECT_EQ(s.hit_ratio(), 0.0);
}

TEST(CacheStatsTest, DesignatedInitializersFollowApiOrder) {
  CacheStats s{.hits = 1, .misses = 2, .stale_hits = 3, .dirty = 4};
  EXPECT_EQ(s.hits, 1u);
  EXPECT_EQ(s.misses, 2u);
  EXPECT_EQ(s.stale_hits, 3u);
  EXPECT_EQ(s.dirty, 4u);
  EXPECT_EQ(s.loads, 0u);
}

TEST(StripedCounterTest, ConcurrentAddsSumExactly) {
  internal::StripedCounter c;
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) c.add();
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(c.load(), 80000u);
  c.add(5);
  EXPECT_EQ(c.load(), 80005u);
}

}  // namespace
}  // namespace larder
