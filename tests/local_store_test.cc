// SPDX-License-Identifier: Apache-2.0
//
// LocalStore: the Store contract, bounds, policies, expiry, listener, counters,
// and a concurrent stress test (run under TSan by scripts/test.sh).
#include "larder/local_store.h"

#include <atomic>
#include <barrier>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "gtest/gtest.h"
#include "larder/internal/mutex.h"
#include "larder/scheduler.h"
#include "tests/testing/manual_scheduler.h"
#include "tests/testing/store_contract.h"

namespace larder {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;

struct Fixture {
  std::shared_ptr<ManualClock> clock =
      std::make_shared<ManualClock>(from_unix_millis(1'700'000'000'000));
  Entry<int> entry(int v, std::chrono::nanoseconds stale = hours(1)) const {
    const TimePoint now = clock->now();
    return Entry<int>{v, now + stale / 2, now + stale};
  }
};

// A listener that records (key, value, cause) under a mutex.
struct Recorder {
  internal::Mutex mu;
  std::vector<std::tuple<int, int, RemovalCause>> events;
  std::function<void(const int&, const int&, RemovalCause)> listener() {
    return [this](const int& k, const int& v, RemovalCause c) {
      internal::MutexLock l(&mu);
      events.emplace_back(k, v, c);
    };
  }
  std::size_t count(RemovalCause c) {
    internal::MutexLock l(&mu);
    std::size_t n = 0;
    for (auto& e : events) n += std::get<2>(e) == c;
    return n;
  }
};

bool has(LocalStore<int, int>& s, int k) { return s.peek(k).has_value(); }

TEST(LocalStoreTest, RejectsConflictingOptions) {
  EXPECT_THROW((LocalStore<int, int>(LocalStoreOptions{.max_entries = 0})), std::invalid_argument);
  try {
    LocalStore<int, int> s(LocalStoreOptions{.max_weight = 100});
    FAIL() << "no throw";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("max_weight"), std::string::npos) << e.what();
  }
  EXPECT_THROW(
      (LocalStore<int, int>(LocalStoreOptions{.max_entries = 10},
                            {.weigher = [](const int&, const int&) { return std::size_t{1}; }})),
      std::invalid_argument);
  EXPECT_THROW((LocalStore<int, int>(LocalStoreOptions{.max_entries = 4, .shards = 8})),
               std::invalid_argument);
}

TEST(LocalStoreTest, NeverExceedsCountBound) {
  Fixture f;
  LocalStore<int, int> s({.max_entries = 100, .shards = 4, .clock = f.clock});
  for (int i = 0; i < 10'000; ++i) {
    ASSERT_TRUE(s.put(i, f.entry(i)).ok());
    ASSERT_LE(s.size(), 100u);
  }
  EXPECT_EQ(s.size(), 100u);
  EXPECT_EQ(s.counters().evictions, 10'000u - 100u);
}

TEST(LocalStoreTest, BoundRespectedUnderConcurrentInserts) {
  Fixture f;
  LocalStore<int, int> s({.max_entries = 64, .shards = 4, .clock = f.clock});
  std::atomic<bool> over{false};
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t) {
    ts.emplace_back([&, t] {
      for (int i = 0; i < 2000; ++i) {
        (void)s.put(t * 100'000 + i, f.entry(i));
        if (s.size() > 64) over = true;
      }
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_FALSE(over.load());
  EXPECT_EQ(s.size(), 64u);
}

TEST(LocalStoreTest, LruEvictsLeastRecentlyUsedInOrder) {
  Fixture f;
  LocalStore<int, int> s(
      {.max_entries = 3, .shards = 1, .clock = f.clock, .policy = EvictionPolicy::kLru});
  for (int k : {1, 2, 3}) ASSERT_TRUE(s.put(k, f.entry(k)).ok());
  ASSERT_TRUE(s.get(1)->has_value());      // order now 2, 3, 1
  ASSERT_TRUE(s.put(4, f.entry(4)).ok());  // evicts 2
  EXPECT_FALSE(has(s, 2));
  ASSERT_TRUE(s.put(5, f.entry(5)).ok());  // evicts 3
  EXPECT_FALSE(has(s, 3));
  EXPECT_TRUE(has(s, 1));
  ASSERT_TRUE(s.put(1, f.entry(10)).ok());  // an update is a use: order 4, 5, 1
  ASSERT_TRUE(s.put(6, f.entry(6)).ok());   // evicts 4
  EXPECT_FALSE(has(s, 4));
  EXPECT_TRUE(has(s, 5));
  EXPECT_EQ(s.peek(1)->value, 10);
}

TEST(LocalStoreTest, PeekIsQuiet) {
  Fixture f;
  LocalStore<int, int> s(
      {.max_entries = 2, .shards = 1, .clock = f.clock, .policy = EvictionPolicy::kLru});
  ASSERT_TRUE(s.put(1, f.entry(1)).ok());
  ASSERT_TRUE(s.put(2, f.entry(2)).ok());
  EXPECT_TRUE(s.peek(1).has_value());  // not an access: 1 stays least recent
  EXPECT_FALSE(s.peek(7).has_value());
  ASSERT_TRUE(s.put(3, f.entry(3)).ok());
  EXPECT_FALSE(has(s, 1));
  EXPECT_EQ(s.counters().hits, 0u);
  EXPECT_EQ(s.counters().misses, 0u);
}

void HotSetSurvivesScan(EvictionPolicy policy) {
  Fixture f;
  LocalStore<int, int> s({.max_entries = 200, .shards = 1, .clock = f.clock, .policy = policy});
  auto access = [&](int k) {
    auto got = s.get(k);
    if (!got->has_value()) (void)s.put(k, f.entry(k));
  };
  for (int round = 0; round < 20; ++round) {
    for (int k = 0; k < 100; ++k) access(k);
  }
  for (int k = 1000; k < 11'000; ++k) access(k);  // one pass, never repeated
  int kept = 0;
  for (int k = 0; k < 100; ++k) kept += has(s, k);
  EXPECT_GE(kept, 95) << "hot set flushed by a scan";
}

TEST(LocalStoreTest, HotSetSurvivesScanAdaptive) {
  HotSetSurvivesScan(EvictionPolicy::kAdaptiveTinyLfu);
}
TEST(LocalStoreTest, HotSetSurvivesScanTinyLfu) { HotSetSurvivesScan(EvictionPolicy::kTinyLfu); }

TEST(LocalStoreTest, LruIsFlushedByScan) {
  Fixture f;
  LocalStore<int, int> s(
      {.max_entries = 200, .shards = 1, .clock = f.clock, .policy = EvictionPolicy::kLru});
  for (int k = 0; k < 100; ++k) (void)s.put(k, f.entry(k));
  for (int k = 1000; k < 1300; ++k) (void)s.put(k, f.entry(k));
  for (int k = 0; k < 100; ++k) EXPECT_FALSE(has(s, k));
}

TEST(LocalStoreTest, ExpiredIsMissAndCounted) {
  Fixture f;
  Recorder rec;
  LocalStore<int, int> s({.max_entries = 10, .shards = 1, .clock = f.clock},
                         {.on_removal = rec.listener()});
  ASSERT_TRUE(s.put(1, f.entry(1, seconds(10))).ok());
  f.clock->advance(seconds(6));  // stale, returned
  auto got = s.get(1);
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->age(f.clock->now()), Age::kStale);
  f.clock->advance(seconds(4));  // exactly stale_until: expired
  got = s.get(1);
  ASSERT_TRUE(got.ok());
  EXPECT_FALSE(got->has_value());
  EXPECT_EQ(s.counters().expirations, 1u);
  EXPECT_EQ(s.counters().hits, 1u);
  EXPECT_EQ(s.counters().misses, 1u);
  EXPECT_EQ(rec.count(RemovalCause::kExpired), 1u);
  EXPECT_EQ(s.size(), 0u);
}

TEST(LocalStoreTest, ExpiredEntriesAreReclaimedWithoutBeingRead) {
  Fixture f;
  Recorder rec;
  LocalStore<int, int> s({.max_entries = 10'000, .shards = 2, .clock = f.clock},
                         {.on_removal = rec.listener()});
  for (int k = 0; k < 1000; ++k) ASSERT_TRUE(s.put(k, f.entry(k, seconds(5 + k % 50))).ok());
  for (int k = 1000; k < 1100; ++k) ASSERT_TRUE(s.put(k, f.entry(k, hours(10))).ok());
  EXPECT_EQ(s.size(), 1100u);
  f.clock->advance(seconds(30));
  s.cleanup();
  // Granularity is one level-0 bucket (~1.07 s): everything with stale_until
  // at least that far in the past is gone, nothing live was touched.
  const std::size_t gone = rec.count(RemovalCause::kExpired);
  EXPECT_GE(gone, 24u * 20);
  EXPECT_LE(gone, 26u * 20);
  f.clock->advance(minutes(2));
  // Ordinary traffic on other keys drives the wheels too.
  for (int k = 1000; k < 1100; ++k) ASSERT_TRUE(s.get(k)->has_value());
  ASSERT_TRUE(s.put(5000, f.entry(1, hours(10))).ok());
  s.cleanup();
  EXPECT_EQ(s.size(), 101u);
  EXPECT_EQ(s.counters().expirations, 1000u);
  EXPECT_EQ(rec.count(RemovalCause::kExpired), 1000u);
  f.clock->advance(hours(11));
  s.cleanup();
  EXPECT_EQ(s.size(), 0u);
}

TEST(LocalStoreTest, FarFutureAndUpdatedDeadlines) {
  Fixture f;
  LocalStore<int, int> s({.max_entries = 10, .shards = 1, .clock = f.clock});
  ASSERT_TRUE(s.put(1, {1, TimePoint::max(), TimePoint::max()}).ok());
  ASSERT_TRUE(s.put(2, f.entry(2, seconds(5))).ok());
  ASSERT_TRUE(s.put(2, f.entry(2, hours(24 * 30))).ok());  // extended
  f.clock->advance(hours(24 * 20));
  s.cleanup();
  EXPECT_TRUE(has(s, 1));
  EXPECT_TRUE(has(s, 2));
  f.clock->advance(hours(24 * 11));
  s.cleanup();
  EXPECT_TRUE(has(s, 1));
  EXPECT_FALSE(has(s, 2));
  EXPECT_EQ(s.size(), 1u);
}

// Puts of entries without a deadline skip the clock while nothing can
// expire; once the wheel holds a deadline, they drive it again.
TEST(LocalStoreTest, PutsWithoutDeadlinesStillDriveTheWheel) {
  Fixture f;
  Recorder rec;
  LocalStore<int, int> s({.max_entries = 100, .shards = 1, .clock = f.clock},
                         {.on_removal = rec.listener()});
  for (int k = 0; k < 10; ++k) ASSERT_TRUE(s.put(k, {k, TimePoint::max(), TimePoint::max()}).ok());
  f.clock->advance(hours(5));  // the wheel was not advanced meanwhile
  ASSERT_TRUE(s.put(100, f.entry(100, seconds(5))).ok());
  f.clock->advance(seconds(30));
  for (int k = 10; k < 20; ++k) ASSERT_TRUE(s.put(k, {k, TimePoint::max(), TimePoint::max()}).ok());
  EXPECT_EQ(rec.count(RemovalCause::kExpired), 1u);  // reclaimed by a put, no cleanup()
  EXPECT_EQ(s.size(), 20u);
  EXPECT_EQ(s.counters().expirations, 1u);
}

// Issue 10 (B): read-only traffic, all of it misses, reclaims expired
// entries; no cleanup(), no put.
TEST(LocalStoreTest, MissesAloneReclaimExpiredEntries) {
  for (const bool batch : {false, true}) {
    Fixture f;
    LocalStore<int, int> s({.max_entries = 100'000, .clock = f.clock});
    for (int k = 0; k < 10'000; ++k) ASSERT_TRUE(s.put(k, f.entry(k, seconds(1))).ok());
    ASSERT_EQ(s.size(), 10'000u);
    f.clock->advance(seconds(10));
    std::vector<int> absent;
    for (int k = 0; k < 4'000; ++k) absent.push_back(1'000'000 + k);
    if (batch) {
      auto got = s.get_many(absent);
      ASSERT_TRUE(got.ok());
      for (const auto& e : *got) ASSERT_FALSE(e.has_value());
    } else {
      for (int k : absent) ASSERT_FALSE(s.get(k)->has_value());
    }
    EXPECT_LT(s.size(), 1'000u) << "batch=" << batch;
    EXPECT_GT(s.counters().expirations, 9'000u) << "batch=" << batch;
    EXPECT_EQ(s.counters().misses, 4'000u);
  }
}

// A hit on an entry that can expire (it reads the clock) reclaims the
// shard's expired entries once the wheel is due, before its read buffer
// fills; a hit on an entry without a deadline leaves it to the buffer.
TEST(LocalStoreTest, HitOnExpiringEntryReclaimsOthers) {
  Fixture f;
  Recorder rec;
  LocalStore<int, int> s({.max_entries = 1'000, .shards = 1, .clock = f.clock},
                         {.on_removal = rec.listener()});
  for (int k = 0; k < 100; ++k) ASSERT_TRUE(s.put(k, f.entry(k, seconds(2))).ok());
  ASSERT_TRUE(s.put(500, f.entry(500, hours(1))).ok());
  ASSERT_TRUE(s.put(501, {501, TimePoint::max(), TimePoint::max()}).ok());
  f.clock->advance(seconds(1));
  ASSERT_TRUE(s.get(500)->has_value());  // not due yet: nothing to do
  EXPECT_EQ(s.size(), 102u);
  f.clock->advance(seconds(5));
  ASSERT_TRUE(s.get(501)->has_value());  // no deadline, no clock read: no work
  EXPECT_EQ(s.size(), 102u);
  ASSERT_TRUE(s.get(500)->has_value());
  EXPECT_EQ(s.size(), 2u);
  EXPECT_EQ(rec.count(RemovalCause::kExpired), 100u);
}

// With nothing that can expire, lookups never read the clock for expiry:
// a store of entries without deadlines, and one emptied of its deadlines,
// go back to the bare lookup.
TEST(LocalStoreTest, NoDeadlinesNoExpiryWork) {
  Fixture f;
  LocalStore<int, int> s({.max_entries = 100, .shards = 1, .clock = f.clock});
  ASSERT_TRUE(s.put(1, f.entry(1, seconds(2))).ok());
  ASSERT_TRUE(s.put(2, {2, TimePoint::max(), TimePoint::max()}).ok());
  ASSERT_TRUE(s.erase(1).ok());
  f.clock->advance(hours(1));
  EXPECT_FALSE(s.get(3)->has_value());
  EXPECT_TRUE(s.get(2)->has_value());
  EXPECT_EQ(s.size(), 1u);
  EXPECT_EQ(s.counters().expirations, 0u);
}

// Scheduled maintenance on a store that sees no call at all after its puts:
// each expired entry is reclaimed within two wheel ticks (~1.07 s each) of
// its stale_until, never before, at every level of the wheel; entries
// without a deadline stay; once nothing can expire, no run is pending.
TEST(LocalStoreTest, ScheduledMaintenanceReclaimsAnIdleStore) {
  Fixture f;
  auto scheduler = std::make_shared<testing::ManualScheduler>();
  internal::Mutex mu;
  std::map<int, TimePoint> reclaimed_at;
  LocalStore<int, int> s(
      {.max_entries = 10'000, .shards = 4, .clock = f.clock, .maintenance = scheduler},
      {.on_removal = [&](const int& k, const int&, RemovalCause c) {
        EXPECT_EQ(c, RemovalCause::kExpired);
        internal::MutexLock l(&mu);
        reclaimed_at.emplace(k, f.clock->now());
      }});
  const TimePoint start = f.clock->now();
  std::map<int, TimePoint> deadline;
  for (int k = 0; k < 600; ++k) {
    // 1-20 s (level 0 of the wheel), then 70-130 s (level 1), then ~2 h (level 2).
    const auto ttl = k < 200   ? milliseconds(1'000 + 97 * k)
                     : k < 400 ? milliseconds(70'000 + 307 * (k - 200))
                               : milliseconds(7'200'000 + 9'001 * (k - 400));
    ASSERT_TRUE(s.put(k, f.entry(k, ttl)).ok());
    deadline[k] = start + ttl;
  }
  for (int k = 1'000; k < 1'010; ++k)
    ASSERT_TRUE(s.put(k, {k, TimePoint::max(), TimePoint::max()}).ok());
  ASSERT_TRUE(scheduler->next().has_value());
  EXPECT_LE(*scheduler->next(), start + seconds(3));
  const auto step = milliseconds(100);
  const auto two_ticks = std::chrono::nanoseconds(std::int64_t{2} << 30);
  std::size_t runs = 0;
  while (f.clock->now() < start + hours(3)) {
    f.clock->advance(step);
    runs += scheduler->run_due(f.clock->now());
  }
  EXPECT_EQ(s.size(), 10u);
  internal::MutexLock l(&mu);
  ASSERT_EQ(reclaimed_at.size(), 600u);
  for (const auto& [k, at] : reclaimed_at) {
    EXPECT_GE(at, deadline[k]) << k;
    EXPECT_LE(at, deadline[k] + two_ticks + step) << k;
  }
  EXPECT_EQ(s.counters().expirations, 600u);
  EXPECT_EQ(scheduler->pending(), 0u) << "a run is pending with nothing to expire";
  // Runs are paced by the deadlines, not by the ticks of 3 hours (~10,000).
  EXPECT_LT(runs, 700u);
  EXPECT_EQ(scheduler->scheduled(), runs);
}

// A put that brings a deadline earlier than the pending run asks for an
// earlier run; a refusing scheduler (shutting down) loses nothing for later
// puts; the store's destruction leaves pending runs harmless.
TEST(LocalStoreTest, ScheduledMaintenanceFollowsEarlierDeadlinesAndOutlivesNothing) {
  Fixture f;
  auto scheduler = std::make_shared<testing::ManualScheduler>();
  {
    LocalStore<int, int> s(
        {.max_entries = 100, .shards = 1, .clock = f.clock, .maintenance = scheduler});
    ASSERT_TRUE(s.put(1, f.entry(1, hours(1))).ok());
    ASSERT_TRUE(scheduler->next().has_value());
    const TimePoint late = *scheduler->next();
    EXPECT_GE(late, f.clock->now() + minutes(30));
    ASSERT_TRUE(s.put(2, f.entry(2, seconds(3))).ok());
    ASSERT_TRUE(scheduler->next().has_value());
    EXPECT_LE(*scheduler->next(), f.clock->now() + seconds(5));
    EXPECT_EQ(scheduler->pending(), 2u);
    ASSERT_TRUE(s.put(3, f.entry(3, seconds(3))).ok());  // same due time: no new run
    EXPECT_EQ(scheduler->pending(), 2u);
    f.clock->advance(seconds(6));
    EXPECT_EQ(scheduler->run_due(f.clock->now()), 1u);
    EXPECT_EQ(s.size(), 1u);
    EXPECT_EQ(s.counters().expirations, 2u);
    EXPECT_TRUE(scheduler->pending() >= 1u);
  }
  // The store is gone; its pending runs (with the store's pointer) do nothing.
  f.clock->advance(hours(2));
  EXPECT_GE(scheduler->run_due(f.clock->now()), 1u);
  EXPECT_EQ(scheduler->pending(), 0u);

  auto closed = std::make_shared<testing::ManualScheduler>();
  closed->close();
  LocalStore<int, int> s(
      {.max_entries = 100, .shards = 1, .clock = f.clock, .maintenance = closed});
  ASSERT_TRUE(s.put(1, f.entry(1, seconds(2))).ok());  // refused: nothing breaks
  ASSERT_TRUE(s.put(2, f.entry(2, seconds(2))).ok());
  EXPECT_EQ(closed->scheduled(), 0u);
  f.clock->advance(seconds(5));
  // The operations still do the work (a miss checks the clock once in 8).
  for (int i = 0; i < 8; ++i) EXPECT_FALSE(s.get(9)->has_value());
  EXPECT_EQ(s.size(), 0u);
}

TEST(LocalStoreTest, PutOfExpiredEntryRemovesOld) {
  Fixture f;
  LocalStore<int, int> s({.max_entries = 10, .shards = 1, .clock = f.clock});
  ASSERT_TRUE(s.put(1, f.entry(1)).ok());
  const TimePoint past = f.clock->now() - seconds(1);
  ASSERT_TRUE(s.put(1, {2, past, past}).ok());
  EXPECT_FALSE(has(s, 1));
  EXPECT_EQ(s.size(), 0u);
}

TEST(LocalStoreTest, WeigherBoundsTotalWeight) {
  Fixture f;
  Recorder rec;
  LocalStore<int, int> s(
      {.max_entries = 100, .max_weight = 100, .shards = 1, .clock = f.clock},
      {.weigher = [](const int&, const int& v) { return static_cast<std::size_t>(v); },
       .on_removal = rec.listener()});
  for (int k = 0; k < 50; ++k) {
    ASSERT_TRUE(s.put(k, f.entry(1 + k % 10)).ok());
    ASSERT_LE(s.weight(), 100u);
  }
  EXPECT_LE(s.counters().weight, 100u);
  EXPECT_GT(s.counters().weight, 80u);
  // Heavier than the whole bound: not stored.
  ASSERT_TRUE(s.put(999, f.entry(101)).ok());
  EXPECT_FALSE(has(s, 999));
  EXPECT_EQ(rec.count(RemovalCause::kEvicted), s.counters().evictions + 1);
  // Updating the weight re-balances.
  const std::size_t before = s.size();
  ASSERT_TRUE(s.put(1000, f.entry(60)).ok());
  EXPECT_LE(s.weight(), 100u);
  EXPECT_LT(s.size(), before + 1);
}

TEST(LocalStoreTest, ListenerSeesEveryCauseOutsideTheLock) {
  Fixture f;
  std::vector<std::tuple<int, int, RemovalCause>> events;
  std::unique_ptr<LocalStore<int, int>> s;
  s = std::make_unique<LocalStore<int, int>>(
      LocalStoreOptions{
          .max_entries = 2, .shards = 1, .clock = f.clock, .policy = EvictionPolicy::kLru},
      LocalStoreCallbacks<int, int>{.on_removal = [&](const int& k, const int& v, RemovalCause c) {
        events.emplace_back(k, v, c);
        // Calling back into the store from the listener must not deadlock.
        (void)s->peek(k);
      }});
  ASSERT_TRUE(s->put(1, f.entry(10)).ok());
  ASSERT_TRUE(s->put(1, f.entry(11)).ok());  // replaced 10
  ASSERT_TRUE(s->put(2, f.entry(20, seconds(2))).ok());
  ASSERT_TRUE(s->put(3, f.entry(30)).ok());  // evicts 1 (LRU)
  ASSERT_TRUE(s->erase(3).ok());             // explicit
  f.clock->advance(seconds(3));
  s->cleanup();  // 2 expired
  ASSERT_TRUE(s->put(4, f.entry(40)).ok());
  ASSERT_TRUE(s->clear().ok());  // explicit
  using E = std::tuple<int, int, RemovalCause>;
  std::vector<E> want{E{1, 10, RemovalCause::kReplaced}, E{1, 11, RemovalCause::kEvicted},
                      E{3, 30, RemovalCause::kExplicit}, E{2, 20, RemovalCause::kExpired},
                      E{4, 40, RemovalCause::kExplicit}};
  EXPECT_EQ(events, want);
}

TEST(LocalStoreTest, CountersAndBatchForms) {
  Fixture f;
  LocalStore<int, int> s({.max_entries = 100, .clock = f.clock});
  std::vector<std::pair<int, Entry<int>>> items{{1, f.entry(1)}, {2, f.entry(2)}};
  ASSERT_TRUE(s.put_many(items).ok());
  std::vector<int> keys{1, 3, 2};
  auto got = s.get_many(keys);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ((*got)[0]->value, 1);
  EXPECT_FALSE((*got)[1].has_value());
  const StoreCounters c = s.counters();
  EXPECT_EQ(c.hits, 2u);
  EXPECT_EQ(c.misses, 1u);
  EXPECT_EQ(c.size, 2u);
  EXPECT_EQ(c.weight, 0u);  // no weigher
  ASSERT_TRUE(s.erase_many(keys).ok());
  EXPECT_EQ(s.size(), 0u);
}

// get_many reads the clock once per batch: an entry past its stale_until is
// absent (and expired) wherever it sits in the batch, before or after live
// and never-expiring ones.
TEST(LocalStoreTest, BatchGetJudgesEveryKeyByTheClock) {
  Fixture f;
  LocalStore<int, int> s({.max_entries = 100, .clock = f.clock});
  ASSERT_TRUE(s.put(1, Entry<int>{1, TimePoint::max(), TimePoint::max()}).ok());
  ASSERT_TRUE(s.put(2, f.entry(2, seconds(10))).ok());  // gone at +10 s
  ASSERT_TRUE(s.put(3, f.entry(3, hours(1))).ok());     // live
  ASSERT_TRUE(s.put(4, f.entry(4, seconds(20))).ok());  // gone at +20 s
  f.clock->advance(seconds(15));
  std::vector<int> keys{1, 2, 3, 4, 5};
  auto got = s.get_many(keys);
  ASSERT_TRUE(got.ok());
  ASSERT_EQ(got->size(), 5u);
  EXPECT_EQ((*got)[0]->value, 1);
  EXPECT_FALSE((*got)[1].has_value());
  EXPECT_EQ((*got)[2]->value, 3);
  EXPECT_EQ((*got)[3]->value, 4);
  EXPECT_FALSE((*got)[4].has_value());
  f.clock->advance(seconds(10));
  got = s.get_many(keys);
  ASSERT_TRUE(got.ok());
  EXPECT_TRUE((*got)[0].has_value());
  EXPECT_FALSE((*got)[1].has_value());
  EXPECT_TRUE((*got)[2].has_value());
  EXPECT_FALSE((*got)[3].has_value());
  EXPECT_EQ(s.counters().expirations, 2u);
}

// A clock that counts its reads.
class CountingClock final : public Clock {
 public:
  explicit CountingClock(std::shared_ptr<ManualClock> base) : base_(std::move(base)) {}
  TimePoint now() const override {
    reads_.fetch_add(1, std::memory_order_relaxed);
    return base_->now();
  }
  std::uint64_t reads() const { return reads_.load(std::memory_order_relaxed); }

 private:
  std::shared_ptr<ManualClock> base_;
  mutable std::atomic<std::uint64_t> reads_{0};
};

// A batch of hits on expiring entries does not read the clock once per key
// (was: 100 reads for 100 keys); only the batch's first read and the odd
// read-buffer drain do.
TEST(LocalStoreTest, BatchGetReadsTheClockOncePerBatch) {
  Fixture f;
  auto clock = std::make_shared<CountingClock>(f.clock);
  LocalStore<int, int> s({.max_entries = 1000, .clock = clock});
  std::vector<int> keys;
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(s.put(i, f.entry(i)).ok());
    keys.push_back(i);
  }
  const std::uint64_t before = clock->reads();
  auto got = s.get_many(keys);
  ASSERT_TRUE(got.ok());
  for (int i = 0; i < 100; ++i) ASSERT_EQ((*got)[static_cast<std::size_t>(i)]->value, i);
  EXPECT_LE(clock->reads() - before, 10u);
}

TEST(LocalStoreTest, AdaptiveWindowBeatsFixedWindowOnRecencyWorkload) {
  // A slowly shifting working set: recency decides, LRU does well and a 1%
  // window does badly; the adaptive window must recover a good part of it.
  Fixture f;
  auto run = [&](EvictionPolicy p) {
    LocalStore<int, int> s({.max_entries = 500, .shards = 1, .clock = f.clock, .policy = p});
    std::uint64_t x = 1;
    int hits = 0;
    const int n = 200'000;
    for (int i = 0; i < n; ++i) {
      // Working set that shifts slowly: recent keys are the ones reused.
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      const int k = i / 4 + static_cast<int>((x >> 33) % 400);
      if (s.get(k)->has_value()) {
        ++hits;
      } else {
        (void)s.put(k, f.entry(k));
      }
    }
    return static_cast<double>(hits) / n;
  };
  const double lru = run(EvictionPolicy::kLru);
  const double fixed = run(EvictionPolicy::kTinyLfu);
  const double adaptive = run(EvictionPolicy::kAdaptiveTinyLfu);
  std::cout << "lru " << lru << " tinylfu " << fixed << " adaptive " << adaptive << "\n";
  EXPECT_GT(adaptive, fixed + 0.02) << "lru " << lru << " fixed " << fixed;
}

// Readers, writers, erasers, expiry and eviction all at once; checks no torn
// values, the bound, and that the counters add up. Run under TSan and ASan.
TEST(LocalStoreTest, ConcurrentStress) {
  Fixture f;
  std::atomic<std::uint64_t> removed{0};
  LocalStore<int, std::string> s(
      LocalStoreOptions{.max_entries = 128, .shards = 4, .clock = f.clock},
      {.on_removal = [&](const int&, const std::string&, RemovalCause) { removed.fetch_add(1); }});
  constexpr int kThreads = 4;
  constexpr int kOps = 3000;
  std::barrier start(kThreads + 1);
  std::atomic<std::uint64_t> puts{0}, gets{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t) {
    ts.emplace_back([&, t] {
      start.arrive_and_wait();
      std::uint64_t x = 88172645463325252ull + t;
      for (int i = 0; i < kOps; ++i) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        const int k = static_cast<int>(x % 512);
        const int op = static_cast<int>((x >> 20) % 10);
        if (op < 6) {
          auto got = s.get(k);
          gets.fetch_add(1);
          ASSERT_TRUE(got.ok());
          if (got->has_value()) {
            ASSERT_EQ((*got)->value, "v" + std::to_string(k));
          }
        } else if (op < 9) {
          const TimePoint now = f.clock->now();
          ASSERT_TRUE(s.put(k, {"v" + std::to_string(k), now + milliseconds(500),
                                now + milliseconds(100 + (x >> 40) % 3000)})
                          .ok());
          puts.fetch_add(1);
        } else {
          ASSERT_TRUE(s.erase(k).ok());
        }
        ASSERT_LE(s.size(), 128u);
        if (i % 64 == 0) (void)s.peek(k);
      }
    });
  }
  start.arrive_and_wait();
  for (int i = 0; i < 200; ++i) {  // the clock moves while others work
    f.clock->advance(milliseconds(20));
    if (i % 50 == 0) s.cleanup();
  }
  for (auto& t : ts) t.join();
  f.clock->advance(hours(1));
  s.cleanup();
  EXPECT_EQ(s.size(), 0u);
  // Every stored entry left exactly once: replaced, evicted, expired or erased,
  // or was rejected because it arrived already expired (not counted as a put).
  EXPECT_LE(removed.load(), puts.load());
  const StoreCounters c = s.counters();
  EXPECT_EQ(c.hits + c.misses, gets.load());
  EXPECT_GT(c.evictions + c.expirations, 0u);
}

// Readers missing (and hitting) while a writer stores short-lived entries,
// the clock moves, and scheduled maintenance runs on its own thread: the
// readers' try_lock expiry, the writer and the runs race for the shards.
// Run under TSan.
TEST(LocalStoreTest, ConcurrentMissesAndScheduledMaintenance) {
  Fixture f;
  auto scheduler = std::make_shared<testing::ManualScheduler>();
  std::atomic<std::uint64_t> expired{0};
  LocalStore<int, std::string> s(
      LocalStoreOptions{
          .max_entries = 4'096, .shards = 4, .clock = f.clock, .maintenance = scheduler},
      {.on_removal = [&](const int&, const std::string&, RemovalCause c) {
        if (c == RemovalCause::kExpired) expired.fetch_add(1);
      }});
  constexpr int kReaders = 2;
  constexpr int kPuts = 20'000;
  std::barrier start(kReaders + 2);
  std::atomic<bool> writing{true}, done{false};
  std::atomic<std::uint64_t> gets{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < kReaders; ++t) {
    ts.emplace_back([&, t] {
      start.arrive_and_wait();
      std::uint64_t x = 0x9e3779b97f4a7c15ull * static_cast<std::uint64_t>(t + 1);
      // At least 5,000 lookups, and on while the writer works (bounded).
      for (int i = 0; i < 5'000'000 && (i < 5'000 || writing.load(std::memory_order_relaxed));
           ++i) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        const int k = static_cast<int>(x % 8'192);  // half the keys are never stored
        auto got = s.get(k);
        gets.fetch_add(1, std::memory_order_relaxed);
        ASSERT_TRUE(got.ok());
        if (got->has_value()) {
          ASSERT_EQ((*got)->value, "v" + std::to_string(k));
        }
      }
    });
  }
  ts.emplace_back([&] {  // the scheduler's thread
    start.arrive_and_wait();
    while (!done.load(std::memory_order_relaxed)) (void)scheduler->run_due(f.clock->now());
  });
  // The writer (this thread): entries of 0.2-3 s; the clock moves 10 ms
  // every 50 puts (4 s in all), so entries expire while the readers miss.
  start.arrive_and_wait();
  for (int i = 0; i < kPuts; ++i) {
    if (i % 50 == 0) f.clock->advance(milliseconds(10));
    const int k = (i * 7) % 4'096;
    const TimePoint now = f.clock->now();
    ASSERT_TRUE(
        s.put(k, {"v" + std::to_string(k), now, now + milliseconds(200 + (i % 2'800))}).ok());
  }
  writing.store(false);
  for (int t = 0; t < kReaders; ++t) ts[static_cast<std::size_t>(t)].join();
  done.store(true);
  ts.back().join();
  EXPECT_EQ(s.counters().hits + s.counters().misses, gets.load());
  EXPECT_GT(expired.load(), 0u);
  // No call from here on: the scheduled runs alone empty the store.
  for (int i = 0; i < 4 && s.size() != 0; ++i) {
    f.clock->advance(seconds(2));
    (void)scheduler->run_due(f.clock->now());
  }
  EXPECT_EQ(s.size(), 0u);
  EXPECT_EQ(s.counters().expirations, expired.load());
}

// Stores destroyed while a real TimerScheduler's thread may be running
// their maintenance: the destructor waits for a run in progress, and later
// runs find the store gone (ASan and TSan check it). No sleeping: the
// scheduler polls the ManualClock every millisecond.
TEST(LocalStoreTest, DestroyedWhileMaintenanceRuns) {
  Fixture f;
  auto scheduler = std::make_shared<TimerScheduler>(
      TimerSchedulerOptions{.clock = f.clock, .max_sleep = milliseconds(1)});
  std::atomic<std::uint64_t> expired{0};
  for (int round = 0; round < 40; ++round) {
    auto s = std::make_unique<LocalStore<int, std::string>>(
        LocalStoreOptions{
            .max_entries = 1'000, .shards = 2, .clock = f.clock, .maintenance = scheduler},
        LocalStoreCallbacks<int, std::string>{
            .on_removal = [&](const int&, const std::string&, RemovalCause) {
              expired.fetch_add(1);
            }});
    for (int k = 0; k < 500; ++k) {
      ASSERT_TRUE(
          s->put(k, {std::string(32, 'x'), f.clock->now(), f.clock->now() + seconds(1)}).ok());
    }
    const std::uint64_t before = expired.load();
    f.clock->advance(seconds(3));  // due: the scheduler's thread starts a run
    if (round % 2 == 0) {
      // Wait until the run has removed something, then destroy the store
      // while the run may still be going.
      const auto limit = std::chrono::steady_clock::now() + seconds(30);
      while (expired.load() == before && std::chrono::steady_clock::now() < limit) {
        std::this_thread::yield();
      }
      ASSERT_GT(expired.load(), before) << "no scheduled run within 30 s (round " << round << ")";
    }
    s.reset();
  }
  EXPECT_GT(expired.load(), 0u);
}

// Lock-free readers while writers replace values (each put publishes a new
// node), erase and evict, on few keys so that nodes are retired and reused
// constantly: a reader must only ever see a whole entry of its own key.
TEST(LocalStoreTest, ReadersDuringReplacementsSeeOnlyWholeEntries) {
  Fixture f;
  LocalStore<int, std::string> s(
      LocalStoreOptions{.max_entries = 48, .shards = 2, .clock = f.clock});
  constexpr int kReaders = 3;
  constexpr int kKeys = 64;
  constexpr int kWrites = 3000;
  std::atomic<bool> done{false};
  std::atomic<std::uint64_t> bad{0}, hits{0}, gets{0};
  std::barrier start(kReaders + 2);
  std::vector<std::thread> ts;
  for (int r = 0; r < kReaders; ++r) {
    ts.emplace_back([&, r] {
      start.arrive_and_wait();
      int k = r;
      while (!done.load(std::memory_order_relaxed)) {
        k = (k * 7 + 3) % kKeys;
        auto got = s.get(k);
        gets.fetch_add(1, std::memory_order_relaxed);
        if (!got.ok()) bad.fetch_add(1);
        if (got.ok() && got->has_value()) {
          hits.fetch_add(1, std::memory_order_relaxed);
          const std::string& v = (*got)->value;
          // "<key>:<version>:" followed by a long tail, so a torn or freed
          // string shows.
          const std::string want = std::to_string(k) + ":";
          if (v.compare(0, want.size(), want) != 0 || v.size() != want.size() + 6 + 64) {
            bad.fetch_add(1);
          }
        }
        auto p = s.peek(k);
        if (p && p->value.compare(0, std::to_string(k).size() + 1, std::to_string(k) + ":") != 0) {
          bad.fetch_add(1);
        }
      }
    });
  }
  ts.emplace_back([&] {
    start.arrive_and_wait();
    std::uint64_t x = 7;
    // Keep writing until the readers overlapped with a good part of it.
    for (int i = 0; i < kWrites || hits.load(std::memory_order_relaxed) < 1000; ++i) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      const int k = static_cast<int>(x % kKeys);
      if (x % 8 == 0) {
        (void)s.erase(k);
      } else {
        char ver[8];
        std::snprintf(ver, sizeof ver, "%05d:", i % 100000);
        (void)s.put(k, {std::to_string(k) + ":" + ver + std::string(64, 'x'),
                        f.clock->now() + hours(1), f.clock->now() + hours(2)});
      }
    }
    done.store(true);
  });
  start.arrive_and_wait();
  for (auto& t : ts) t.join();
  EXPECT_EQ(bad.load(), 0u);
  EXPECT_GT(hits.load(), 0u);
  const StoreCounters c = s.counters();
  EXPECT_EQ(c.hits + c.misses, gets.load());
  EXPECT_EQ(c.hits, hits.load());
  EXPECT_LE(s.size(), 48u);
  s.cleanup();
}

// Trivially copyable entries are replaced in place behind a seqlock: readers
// racing with the rewrites see whole entries only (both halves of the value
// and its deadlines from the same put), and each replacement is reported.
TEST(LocalStoreTest, InPlaceReplacementsAreNeverTorn) {
  struct Pair {
    std::uint64_t a, b;
  };
  Fixture f;
  std::atomic<std::uint64_t> replaced{0};
  LocalStore<int, Pair> s(LocalStoreOptions{.max_entries = 64, .shards = 2, .clock = f.clock},
                          {.on_removal = [&](const int&, const Pair& p, RemovalCause c) {
                            if (c == RemovalCause::kReplaced && p.a == p.b) replaced.fetch_add(1);
                          }});
  constexpr int kKeys = 8;
  const TimePoint base = f.clock->now() + hours(1);
  auto make = [&](std::uint64_t i) {
    return Entry<Pair>{
        {i, i}, base + std::chrono::nanoseconds(i), base + hours(1) + std::chrono::nanoseconds(i)};
  };
  for (int k = 0; k < kKeys; ++k) ASSERT_TRUE(s.put(k, make(0)).ok());
  std::atomic<bool> done{false};
  std::atomic<std::uint64_t> bad{0}, hits{0};
  std::barrier start(3);
  std::vector<std::thread> ts;
  for (int r = 0; r < 2; ++r) {
    ts.emplace_back([&, r] {
      start.arrive_and_wait();
      int k = r;
      while (!done.load(std::memory_order_relaxed)) {
        k = (k + 1) % kKeys;
        auto got = s.get(k);
        if (!got.ok() || !got->has_value()) {
          bad.fetch_add(1);
          continue;
        }
        hits.fetch_add(1, std::memory_order_relaxed);
        const Entry<Pair>& e = **got;
        const auto i = static_cast<std::uint64_t>((e.fresh_until - base).count());
        if (e.value.a != e.value.b || e.value.a != i || e.stale_until != e.fresh_until + hours(1)) {
          bad.fetch_add(1);
        }
        auto p = s.peek(k);
        if (!p || p->value.a != p->value.b) bad.fetch_add(1);
      }
    });
  }
  constexpr std::uint64_t kWrites = 4000;
  start.arrive_and_wait();
  for (std::uint64_t i = 1; i <= kWrites || hits.load(std::memory_order_relaxed) < 1000; ++i) {
    ASSERT_TRUE(s.put(static_cast<int>(i % kKeys), make(i)).ok());
    if (i > 10 * kWrites) break;
  }
  done.store(true);
  for (auto& t : ts) t.join();
  EXPECT_EQ(bad.load(), 0u);
  EXPECT_GT(hits.load(), 0u);
  EXPECT_GE(replaced.load(), kWrites);
  EXPECT_EQ(s.size(), static_cast<std::size_t>(kKeys));
}

// A put on a present key of a store with no listener, no weigher and no
// deadlines rewrites the entry without the shard's lock and hands the
// policy's update to the read buffer: the next write replays it first, in
// order, so the update still counts as a use (here it saves key 1 from
// eviction, twice) and the new values are read back at once.
TEST(LocalStoreTest, UnlockedUpdatesReachThePolicyInOrder) {
  for (EvictionPolicy p : {EvictionPolicy::kLru, EvictionPolicy::kAdaptiveTinyLfu}) {
    LocalStore<int, int> s({.max_entries = 3, .shards = 1, .policy = p});
    auto e = [](int v) { return Entry<int>{v, TimePoint::max(), TimePoint::max()}; };
    for (int k : {1, 2, 3}) ASSERT_TRUE(s.put(k, e(k)).ok());
    if (p == EvictionPolicy::kLru) {
      ASSERT_TRUE(s.put(1, e(10)).ok());  // a use: order 2, 3, 1
      EXPECT_EQ((*s.get(1))->value, 10);  // a use too: order 2, 3, 1
      ASSERT_TRUE(s.put(4, e(4)).ok());   // evicts 2
      EXPECT_FALSE(s.peek(2).has_value());
      ASSERT_TRUE(s.put(3, e(30)).ok());  // order 1, 4, 3
      ASSERT_TRUE(s.put(1, e(11)).ok());  // order 4, 3, 1
      ASSERT_TRUE(s.put(5, e(5)).ok());   // evicts 4
      EXPECT_FALSE(s.peek(4).has_value());
      EXPECT_EQ(s.peek(1)->value, 11);
      EXPECT_EQ(s.peek(3)->value, 30);
    } else {
      // W-TinyLFU: updates raise key 1's frequency, so it is admitted over
      // newcomers seen once.
      for (int i = 0; i < 8; ++i) ASSERT_TRUE(s.put(1, e(100 + i)).ok());
      for (int k = 10; k < 40; ++k) ASSERT_TRUE(s.put(k, e(k)).ok());
      ASSERT_TRUE(s.peek(1).has_value());
      EXPECT_EQ(s.peek(1)->value, 107);
    }
    EXPECT_EQ(s.size(), 3u);
  }
}

// Unlocked updates (never-expiring entries) and locked in-place updates
// (entries with deadlines) of the same keys, concurrent with inserts that
// evict, erases and readers: both kinds of writer claim the seqlock stripes
// by CAS, so a reader only ever sees whole entries, and every write lands
// (or its key was removed); the bound holds. Runs under TSan.
TEST(LocalStoreTest, UnlockedAndLockedUpdatesRaceWithEvictionsAndReaders) {
  struct Pair {
    std::uint64_t a, b;
  };
  Fixture f;
  constexpr std::size_t kMax = 64;
  LocalStore<int, Pair> s(LocalStoreOptions{.max_entries = kMax, .shards = 2, .clock = f.clock});
  constexpr int kHot = 16;
  const TimePoint base = f.clock->now() + hours(1);
  // Value i: {i, i}, fresh_until base + i ns; stale_until max (unlocked
  // path) or fresh_until + 1 h (locked path).
  auto make = [&](std::uint64_t i, bool expiring) {
    const TimePoint fresh = base + std::chrono::nanoseconds(i);
    return Entry<Pair>{{i, i}, fresh, expiring ? fresh + hours(1) : TimePoint::max()};
  };
  for (int k = 0; k < kHot; ++k) ASSERT_TRUE(s.put(k, make(0, false)).ok());
  std::atomic<bool> done{false};
  std::atomic<std::uint64_t> bad{0}, hits{0};
  constexpr int kWriters = 2;
  std::barrier start(kWriters + 4);  // 2 writers, locked writer, inserter, reader, main
  std::vector<std::thread> ts;
  for (int w = 0; w < kWriters; ++w) {  // unlocked updates (and inserts when evicted)
    ts.emplace_back([&, w] {
      start.arrive_and_wait();
      for (std::uint64_t i = 1; i <= 20000; ++i) {
        if (!s.put(static_cast<int>((i * 7 + w) % kHot), make(i, false)).ok()) bad.fetch_add(1);
      }
    });
  }
  ts.emplace_back([&] {  // locked in-place updates of the same keys
    start.arrive_and_wait();
    for (std::uint64_t i = 1; i <= 5000; ++i) {
      if (!s.put(static_cast<int>(i % kHot), make(i, true)).ok()) bad.fetch_add(1);
    }
  });
  ts.emplace_back([&] {  // inserts that evict, and erases
    start.arrive_and_wait();
    for (int i = 0; i < 5000; ++i) {
      if (!s.put(1000 + i % 200, make(1, false)).ok()) bad.fetch_add(1);
      if (i % 50 == 0 && !s.erase(i % kHot).ok()) bad.fetch_add(1);
    }
  });
  ts.emplace_back([&] {  // a reader
    start.arrive_and_wait();
    int k = 0;
    while (!done.load(std::memory_order_relaxed)) {
      k = (k + 1) % kHot;
      auto got = s.get(k);
      if (!got.ok()) bad.fetch_add(1);
      if (!got.ok() || !got->has_value()) continue;
      hits.fetch_add(1, std::memory_order_relaxed);
      const Entry<Pair>& e = **got;
      const auto i = static_cast<std::uint64_t>((e.fresh_until - base).count());
      if (e.value.a != e.value.b || e.value.a != i ||
          (e.stale_until != TimePoint::max() && e.stale_until != e.fresh_until + hours(1))) {
        bad.fetch_add(1);
      }
    }
  });
  start.arrive_and_wait();
  for (std::size_t i = 0; i + 1 < ts.size(); ++i) ts[i].join();
  done.store(true);
  ts.back().join();
  EXPECT_EQ(bad.load(), 0u);
  EXPECT_LE(s.size(), kMax);
  // Quiet again: a put on a present key is read back, locked or not.
  for (int k = 0; k < kHot; ++k) {
    if (!s.peek(k).has_value()) continue;
    ASSERT_TRUE(s.put(k, make(99, k % 2 == 0)).ok());
    auto got = s.get(k);
    ASSERT_TRUE(got.ok() && got->has_value()) << k;
    EXPECT_EQ((*got)->value.a, 99u) << k;
  }
  s.cleanup();
  EXPECT_LE(s.size(), kMax);
}

// An in-place replacement moves the entry's deadline in the timer wheel:
// shortened, it is reclaimed at the new deadline; extended, it survives the
// old one.
TEST(LocalStoreTest, InPlaceReplacementReschedulesExpiry) {
  Fixture f;
  Recorder rec;
  LocalStore<int, int> s({.max_entries = 10, .shards = 1, .clock = f.clock},
                         {.on_removal = rec.listener()});
  ASSERT_TRUE(s.put(1, f.entry(1, hours(10))).ok());
  ASSERT_TRUE(s.put(1, f.entry(2, seconds(5))).ok());  // shortened
  ASSERT_TRUE(s.put(2, f.entry(3, seconds(5))).ok());
  ASSERT_TRUE(s.put(2, f.entry(4, hours(10))).ok());  // extended
  ASSERT_TRUE(s.put(3, {5, TimePoint::max(), TimePoint::max()}).ok());
  ASSERT_TRUE(s.put(3, f.entry(6, seconds(5))).ok());  // now finite
  EXPECT_EQ(rec.count(RemovalCause::kReplaced), 3u);
  f.clock->advance(seconds(30));
  s.cleanup();
  EXPECT_EQ(rec.count(RemovalCause::kExpired), 2u);
  EXPECT_FALSE(has(s, 1));
  EXPECT_FALSE(has(s, 3));
  ASSERT_TRUE(s.peek(2).has_value());
  EXPECT_EQ(s.peek(2)->value, 4);
  EXPECT_EQ(s.size(), 1u);
}

// Many readers of a read-only store: every hit is counted, nothing blocks,
// and the accesses that were recorded reach the policy (a later scan of cold
// keys under LRU evicts the cold ones first, not the keys everyone read).
TEST(LocalStoreTest, ConcurrentReadersRecordAccessesForThePolicy) {
  Fixture f;
  LocalStore<int, int> s(
      {.max_entries = 200, .shards = 1, .clock = f.clock, .policy = EvictionPolicy::kLru});
  for (int k = 0; k < 200; ++k) ASSERT_TRUE(s.put(k, f.entry(k)).ok());
  constexpr int kReaders = 4;
  constexpr int kReads = 4000;
  // An odd number of hot keys: a thread's 1-in-16 sample (counted per
  // thread) then walks through all of them, not only one parity.
  constexpr int kHot = 49;
  std::barrier start(kReaders);
  std::vector<std::thread> ts;
  for (int r = 0; r < kReaders; ++r) {
    ts.emplace_back([&] {
      start.arrive_and_wait();
      for (int i = 0; i < kReads; ++i) {
        auto got = s.get(i % kHot);  // keys 0..48 are hot
        ASSERT_TRUE(got.ok() && got->has_value());
        ASSERT_EQ((*got)->value, i % kHot);
      }
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(s.counters().hits, std::uint64_t{kReaders} * kReads);
  // What the readers recorded, and nothing else: cleanup() drains the read
  // buffers into the policy. Under contention the buffers sample (1 read in
  // 16 per thread, see ReadBuffer) and drop reads when full; each hot key is
  // read kReaders * kReads / 49, about 326 times, about 20 of them sampled.
  // Without the readers' accesses, LRU would evict keys 0..99, the hot keys
  // first. Then 100 new keys: LRU evicts 100 of the cold keys 49..199.
  s.cleanup();
  for (int k = 1000; k < 1100; ++k) ASSERT_TRUE(s.put(k, f.entry(k)).ok());
  int hot = 0;
  for (int k = 0; k < kHot; ++k) hot += has(s, k);
  EXPECT_EQ(hot, kHot);
}

TEST(LocalStoreTest, EntryForU64KeysAndValuesIs64Bytes) {
  // Hooks (policy links, hash, weight, queue, timer ids) and payload (key,
  // value, fresh_until, stale_until) are two 32-byte records.
  EXPECT_EQ(sizeof(internal::LocalHooks), 32u);
  EXPECT_EQ((sizeof(internal::LocalPayload<std::uint64_t, std::uint64_t>)), 32u);
}

struct LocalStoreFactory {
  static std::shared_ptr<Store<std::string, std::string>> make(std::shared_ptr<Clock> clock) {
    return std::make_shared<LocalStore<std::string, std::string>>(
        LocalStoreOptions{.max_entries = 1000, .clock = std::move(clock)});
  }
};
struct LocalStoreLruFactory {
  static std::shared_ptr<Store<std::string, std::string>> make(std::shared_ptr<Clock> clock) {
    return std::make_shared<LocalStore<std::string, std::string>>(
        LocalStoreOptions{.max_entries = 1000,
                          .shards = 4,
                          .clock = std::move(clock),
                          .policy = EvictionPolicy::kLru});
  }
};

}  // namespace
namespace testing {
using LocalStoreFactories = ::testing::Types<LocalStoreFactory, LocalStoreLruFactory>;
INSTANTIATE_TYPED_TEST_SUITE_P(LocalStore, StoreContractTest, LocalStoreFactories);
}  // namespace testing
}  // namespace larder
