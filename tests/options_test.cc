// SPDX-License-Identifier: Apache-2.0
//
// Options are plain aggregates that users fill with designated initializers
// naming only the fields they care about. This file compiles
// under the dev preset's -Wall -Wextra -Werror, which turns a member without a
// default initializer into an error (-Wmissing-field-initializers): building
// it is most of the test. Redis options are checked in
// tests/integration/redis_options_test.cc.
#include <chrono>
#include <string>

#include "gtest/gtest.h"
#include "larder/larder.h"

namespace larder {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

TEST(OptionsTest, CacheOptionsTakeAnySubsetInApiOrder) {
  CacheOptions<std::string, int> a{.ttl = seconds(5)};
  CacheOptions<std::string, int> b{.stale_while_revalidate = seconds(1),
                                   .write_mode = WriteMode::kNone,
                                   .negative = {.ttl = seconds(2)}};
  EXPECT_EQ(a.ttl, seconds(5));
  EXPECT_EQ(a.stale_while_revalidate, milliseconds(0));
  EXPECT_EQ(b.ttl, std::chrono::minutes(1));  // API default
  EXPECT_EQ(b.negative.ttl, seconds(2));
  EXPECT_EQ(b.write_back.batch, 256u);
  EXPECT_EQ(b.write_back.max_dirty, 100'000u);
  EXPECT_EQ(b.write_back.delay, milliseconds(100));
  EXPECT_EQ(b.clock, nullptr);
  // The grouped options take any subset too.
  WriteBackOptions<std::string> w{.journal = "views", .batch = 8};
  EXPECT_EQ(w.delay, milliseconds(100));
  EXPECT_EQ(w.max_dirty, 100'000u);
  NegativeCacheOptions n{.max_entries = 5};
  EXPECT_EQ(n.ttl, milliseconds(0));
  Writer<std::string, int> wr{.write = nullptr};
  EXPECT_EQ(wr.erase, nullptr);
}

TEST(OptionsTest, StoreOptionsTakeAnySubset) {
  LocalStoreOptions l{.max_entries = 7};
  EXPECT_EQ(l.max_entries, 7u);
  EXPECT_EQ(l.max_weight, 0u);
  EXPECT_EQ(l.shards, 0u);
  LocalStoreOptions l2{.shards = 1, .clock = std::make_shared<ManualClock>()};
  EXPECT_EQ(l2.max_entries, 10'000u);
  TieredStoreOptions t{.l1_max_ttl = seconds(3)};
  EXPECT_EQ(t.l1_max_ttl, seconds(3));
  LocalStoreCallbacks<std::string, int> cb{.on_removal = nullptr};
  EXPECT_EQ(cb.weigher, nullptr);
  ThreadPoolOptions p{.threads = 3};
  EXPECT_EQ(p.threads, 3u);
}

}  // namespace
}  // namespace larder
