// SPDX-License-Identifier: Apache-2.0
//
// KeyTurns (include/larder/internal/key_turns.h): per-key FIFO turns.
#include "larder/internal/key_turns.h"

#include <atomic>
#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "larder/internal/mutex.h"
#include "tests/testing/testing.h"

namespace larder {
namespace {

using internal::KeyTurns;
using std::chrono::milliseconds;

TEST(KeyTurnsTest, ReentryByTheHolderIsRefusedAtOnce) {
  KeyTurns<std::string> turns;
  auto t = turns.acquire("k");
  ASSERT_TRUE(t.has_value());
  EXPECT_FALSE(turns.acquire("k").has_value());  // would wait for itself
  auto other = turns.acquire("j");               // another key: no wait
  EXPECT_TRUE(other.has_value());
}

TEST(KeyTurnsTest, ReleasedTurnCanBeTakenAgain) {
  KeyTurns<int> turns;
  for (int i = 0; i < 3; ++i) {
    auto t = turns.acquire(7);
    ASSERT_TRUE(t.has_value()) << "pass " << i;
  }
}

TEST(KeyTurnsTest, MovedFromTurnReleasesNothing) {
  KeyTurns<int> turns;
  std::optional<KeyTurns<int>::Turn> a = turns.acquire(1);
  ASSERT_TRUE(a.has_value());
  {
    KeyTurns<int>::Turn b(std::move(*a));
    a.reset();  // the moved-from turn's destructor must not release
    EXPECT_FALSE(turns.acquire(1).has_value()) << "the turn was released by a moved-from Turn";
  }
  EXPECT_TRUE(turns.acquire(1).has_value());
}

// Waiters of one key are served in the order they called acquire(), and only
// once the previous holder released. Waiter i + 1 starts only once waiter i
// holds its ticket (queued() counts it), so the order of acquire() is known.
TEST(KeyTurnsTest, WaitersOfOneKeyAreServedInOrder) {
  KeyTurns<int> turns;
  constexpr int kWaiters = 5;
  auto first = turns.acquire(42);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(turns.queued(42), 1u);
  internal::Mutex mu;
  std::vector<int> order;  // guarded by mu
  std::atomic<int> holding{0};
  std::vector<std::thread> ts;
  for (int i = 0; i < kWaiters; ++i) {
    ts.emplace_back([&, i] {
      auto t = turns.acquire(42);
      ASSERT_TRUE(t.has_value());
      EXPECT_EQ(holding.fetch_add(1), 0) << "two turns of one key held at once";
      {
        internal::MutexLock l(&mu);
        order.push_back(i);
      }
      holding.fetch_sub(1);
    });
    ASSERT_TRUE(testing::eventually([&] { return turns.queued(42) == std::size_t(i) + 2; }))
        << "waiter " << i << " never queued";
  }
  {
    internal::MutexLock l(&mu);
    EXPECT_TRUE(order.empty()) << "a waiter ran while the first turn was held";
  }
  first.reset();
  for (auto& t : ts) t.join();
  EXPECT_EQ(turns.queued(42), 0u);
  std::vector<int> expect;
  for (int i = 0; i < kWaiters; ++i) expect.push_back(i);
  internal::MutexLock l(&mu);
  EXPECT_EQ(order, expect);
}

TEST(KeyTurnsTest, DifferentKeysDoNotWaitForEachOther) {
  KeyTurns<int> turns;
  // Keys 0 and kStripes share a stripe: still independent.
  const int a = 0, b = static_cast<int>(KeyTurns<int>::kStripes);
  auto ta = turns.acquire(a);
  ASSERT_TRUE(ta.has_value());
  std::atomic<bool> got_b{false};
  std::thread other([&] {
    auto tb = turns.acquire(b);
    EXPECT_TRUE(tb.has_value());
    got_b.store(true);
  });
  EXPECT_TRUE(testing::eventually([&] { return got_b.load(); }))
      << "a turn of another key waited for a held one";
  other.join();
}

// Stress (also under TSan): many threads increment per-key counters without
// atomics while holding the key's turn; every increment must survive.
TEST(KeyTurnsTest, StressTurnsAreMutuallyExclusivePerKey) {
  KeyTurns<int> turns;
  constexpr int kThreads = 6, kKeys = 8, kIters = 2000;
  std::vector<long> counters(kKeys, 0);
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t) {
    ts.emplace_back([&, t] {
      for (int i = 0; i < kIters; ++i) {
        const int k = (i * 3 + t) % kKeys;
        auto turn = turns.acquire(k);
        ASSERT_TRUE(turn.has_value());
        counters[k] = counters[k] + 1;  // a data race unless turns exclude
      }
    });
  }
  for (auto& t : ts) t.join();
  long total = 0;
  for (long c : counters) total += c;
  EXPECT_EQ(total, long{kThreads} * kIters);
}

}  // namespace
}  // namespace larder
