// SPDX-License-Identifier: Apache-2.0
//
// Cache<K, V>: get_or_load basics, single-flight, failures, options,
// write-through, invalidation races. Refresh behaviour is in
// cache_refresh_test.cc, get_many in cache_many_test.cc.
#include "larder/cache.h"

#include <atomic>
#include <latch>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/blocking_loader.h"
#include "tests/testing/cache_env.h"
#include "tests/testing/fake_db.h"
#include "tests/testing/recording_loader.h"
#include "tests/testing/testing.h"

namespace larder {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using ::testing::HasSubstr;
using Env = testing::CacheEnv<>;
using SCache = Cache<std::string, std::string>;
using Loader = testing::RecordingLoader<std::string, std::string>;
using Blocking = testing::BlockingLoader<std::string, std::string>;

Loader::Answer constant(std::string v) {
  return [v](const std::string&) -> absl::StatusOr<std::string> { return v; };
}

TEST(CacheTest, LoadsOnceThenHits) {
  Env env;
  SCache cache(env.store, env.options());
  Loader loader([](const std::string& k) -> absl::StatusOr<std::string> { return "v:" + k; });
  EXPECT_EQ(*cache.get_or_load("a", loader), "v:a");
  EXPECT_EQ(*cache.get_or_load("a", loader), "v:a");
  EXPECT_EQ(loader.calls(), 1);
  CacheStats s = cache.stats();
  EXPECT_EQ(s.hits, 1u);
  EXPECT_EQ(s.misses, 1u);
  EXPECT_EQ(s.loads, 1u);
  EXPECT_DOUBLE_EQ(s.hit_ratio(), 0.5);
}

TEST(CacheTest, AcceptsPlainValueLoaders) {
  Env env;
  Cache<std::string, int> cache(std::make_shared<testing::MapStore<std::string, int>>(env.clock),
                                [&] {
                                  CacheOptions<std::string, int> o;
                                  o.clock = env.clock;
                                  o.executor = env.executor;
                                  return o;
                                }());
  EXPECT_EQ(
      *cache.get_or_load("abc", [](const std::string& k) { return static_cast<int>(k.size()); }),
      3);
}

TEST(CacheTest, ExpiredEntryIsLoadedAgain) {
  Env env;
  SCache cache(env.store, env.options());
  Loader loader(constant("v1"));
  EXPECT_EQ(*cache.get_or_load("k", loader), "v1");
  loader.set_answer(constant("v2"));
  env.clock->advance(seconds(9));
  EXPECT_EQ(*cache.get_or_load("k", loader), "v1");
  env.clock->advance(seconds(1));
  EXPECT_EQ(*cache.get_or_load("k", loader), "v2");
  EXPECT_EQ(loader.calls(), 2);
}

// 64 threads miss one key at once: one loader call, every thread gets its value.
TEST(CacheTest, ThunderingHerdCausesOneLoad) {
  Env env;
  SCache cache(env.store, env.options());
  Blocking loader([](const std::string&) -> absl::StatusOr<std::string> { return "hot"; });
  constexpr int kThreads = 64;
  std::vector<absl::StatusOr<std::string>> got(kThreads);
  std::vector<std::thread> threads;
  std::latch start(kThreads);
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      start.arrive_and_wait();
      got[i] = cache.get_or_load("k", loader);
    });
  }
  loader.wait_entered(1);
  // Hold the load until every other thread has joined it.
  EXPECT_TRUE(testing::eventually([&] { return cache.stats().coalesced >= kThreads - 1; }))
      << "waited 20 s for kThreads - 1 callers to join the flight";
  loader.open();
  for (auto& t : threads) t.join();
  EXPECT_EQ(loader.calls(), 1);
  for (const auto& g : got) EXPECT_EQ(*g, "hot");
  EXPECT_EQ(cache.stats().loads, 1u);
  EXPECT_EQ(cache.stats().coalesced, static_cast<std::uint64_t>(kThreads - 1));
}

TEST(CacheTest, LoadErrorFansOutToEveryWaiterAndIsNotCached) {
  Env env;
  SCache cache(env.store, env.options());
  Blocking loader([](const std::string&) -> absl::StatusOr<std::string> {
    return absl::UnavailableError("db down");
  });
  constexpr int kThreads = 16;
  std::vector<absl::StatusOr<std::string>> got(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] { got[i] = cache.get_or_load("k", loader); });
  }
  loader.wait_entered(1);
  EXPECT_TRUE(testing::eventually([&] { return cache.stats().coalesced >= kThreads - 1; }))
      << "waited 20 s for kThreads - 1 callers to join the flight";
  loader.open();
  for (auto& t : threads) t.join();
  EXPECT_EQ(loader.calls(), 1);
  for (const auto& g : got) {
    EXPECT_EQ(g.status().code(), absl::StatusCode::kUnavailable);
    EXPECT_EQ(g.status().message(), "db down");
  }
  EXPECT_EQ(env.store->size(), 0u);
  EXPECT_EQ(cache.stats().load_failures, 1u);
  loader.set_answer([](const std::string&) -> absl::StatusOr<std::string> { return "back"; });
  EXPECT_EQ(*cache.get_or_load("k", loader), "back");
  EXPECT_EQ(loader.calls(), 2);
}

TEST(CacheTest, ThrowingLoadersBecomeInternalErrors) {
  Env env;
  SCache cache(env.store, env.options());
  auto r1 = cache.get_or_load(
      "a", [](const std::string&) -> std::string { throw std::runtime_error("boom"); });
  EXPECT_EQ(r1.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(std::string(r1.status().message()), HasSubstr("boom"));
  auto r2 = cache.get_or_load("b", [](const std::string&) -> std::string { throw 42; });
  EXPECT_EQ(r2.status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(env.store->size(), 0u);
  EXPECT_EQ(cache.stats().load_failures, 2u);
}

TEST(CacheTest, ThrowingLoaderFansOutToWaiters) {
  Env env;
  SCache cache(env.store, env.options());
  testing::BlockingLoader<std::string, std::string> loader(
      [](const std::string&) -> absl::StatusOr<std::string> { throw std::logic_error("bad row"); });
  absl::StatusOr<std::string> a, b;
  std::thread t1([&] { a = cache.get_or_load("k", loader); });
  loader.wait_entered(1);
  std::thread t2([&] { b = cache.get_or_load("k", loader); });
  EXPECT_TRUE(testing::eventually([&] { return cache.stats().coalesced >= 1; }))
      << "waited 20 s for 1 caller to join the flight";
  loader.open();
  t1.join();
  t2.join();
  EXPECT_EQ(a.status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(b.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(std::string(b.status().message()), HasSubstr("bad row"));
}

TEST(CacheTest, DistinctKeysLoadInParallel) {
  Env env;
  SCache cache(env.store, env.options());
  Blocking slow([](const std::string&) -> absl::StatusOr<std::string> { return "slow"; });
  std::thread t([&] { EXPECT_EQ(*cache.get_or_load("a", slow), "slow"); });
  slow.wait_entered(1);
  // "a" is loading; "b" neither waits for it nor shares its loader call.
  EXPECT_EQ(*cache.get_or_load("b", constant("fast")), "fast");
  // And a cached key never waits either.
  EXPECT_EQ(*cache.get_or_load("b", constant("unused")), "fast");
  slow.open();
  t.join();
}

TEST(CacheTest, StoreErrorIsAMissThatDegradesToTheLoader) {
  Env env;
  SCache cache(env.store, env.options());
  env.store->set_down(absl::UnavailableError("store down"));
  Loader loader(constant("v"));
  EXPECT_EQ(*cache.get_or_load("k", loader), "v");
  EXPECT_EQ(*cache.get_or_load("k", loader), "v");
  EXPECT_EQ(loader.calls(), 2);
  EXPECT_GE(cache.stats().store_errors, 2u);
  env.store->set_down(absl::OkStatus());
  EXPECT_EQ(*cache.get_or_load("k", loader), "v");
  EXPECT_EQ(*cache.get_or_load("k", loader), "v");
  EXPECT_EQ(loader.calls(), 3);  // recovered: cached again
}

TEST(CacheTest, GetIfPresentNeverLoads) {
  Env env;
  SCache cache(env.store, env.options());
  EXPECT_EQ(cache.get_if_present("k"), std::nullopt);
  ASSERT_TRUE(cache.put("k", "v").ok());
  EXPECT_EQ(cache.get_if_present("k"), "v");
  env.clock->advance(seconds(11));
  EXPECT_EQ(cache.get_if_present("k"), std::nullopt);
  EXPECT_EQ(cache.stats().hits, 1u);
  EXPECT_EQ(cache.stats().misses, 2u);
}

// CountingClock: a manual clock that counts how often it is read.
class CountingClock final : public Clock {
 public:
  TimePoint now() const override {
    reads.fetch_add(1);
    return time.now();
  }
  ManualClock time{from_unix_millis(1'700'000'000'000)};
  mutable std::atomic<int> reads{0};
};

// A store with a clock returns no entry past stale_until (Store's contract),
// so a hit on an entry without a stale span reads no clock in the cache: the
// store's own read (MapStore reads once per get) is the only one. With a
// stale span or refresh_ahead, the cache reads the clock to judge the entry.
TEST(CacheTest, AHitTheStoreJudgedReadsNoClock) {
  auto clock = std::make_shared<CountingClock>();
  auto executor = std::make_shared<testing::ManualExecutor>();
  auto reads_during = [&](auto&& call) {
    const int before = clock->reads.load();
    call();
    return clock->reads.load() - before;
  };
  auto make = [&](auto tune) {
    auto store = std::make_shared<testing::MapStore<std::string, std::string>>(clock);
    CacheOptions<std::string, std::string> o;
    o.ttl = seconds(10);
    o.executor = executor;
    tune(o);
    return std::make_unique<SCache>(store, std::move(o));
  };
  Loader loader(constant("loaded"));
  auto plain = make([](auto&) {});
  ASSERT_TRUE(plain->put("k", "v").ok());
  EXPECT_EQ(reads_during([&] { EXPECT_EQ(*plain->get_or_load("k", loader), "v"); }), 1);
  EXPECT_EQ(reads_during([&] { EXPECT_EQ(plain->get_if_present("k"), "v"); }), 1);
  EXPECT_EQ(plain->stats().hits, 2u);
  // A miss is judged (and loaded) at an instant the cache reads.
  EXPECT_GE(reads_during([&] { EXPECT_EQ(*plain->get_or_load("m", loader), "loaded"); }), 2);

  auto swr = make([](auto& o) { o.stale_while_revalidate = seconds(5); });
  ASSERT_TRUE(swr->put("k", "v").ok());
  EXPECT_EQ(reads_during([&] { EXPECT_EQ(*swr->get_or_load("k", loader), "v"); }), 2);
  clock->time.advance(seconds(12));  // stale: served, and a refresh is queued
  EXPECT_EQ(*swr->get_or_load("k", loader), "v");
  EXPECT_EQ(swr->stats().stale_hits, 1u);

  auto ahead = make([](auto& o) { o.refresh_ahead = 0.5; });
  ASSERT_TRUE(ahead->put("k", "v").ok());
  EXPECT_EQ(reads_during([&] { EXPECT_EQ(ahead->get_if_present("k"), "v"); }), 2);
  EXPECT_EQ(loader.calls(), 1);
  plain.reset();
  swr.reset();
  ahead.reset();
  executor->run_all();  // the queued refresh sees its cache closed
}

// A store without a clock (Store::clock() null) promises nothing about age:
// the cache judges every entry it returns, and an expired one is loaded again.
TEST(CacheTest, AStoreWithoutAClockHasItsEntriesJudgedByTheCache) {
  Env env;
  // The store keeps its own frozen clock, so it never drops an entry.
  struct Clockless : testing::MapStore<std::string, std::string> {
    using MapStore::MapStore;
    std::shared_ptr<Clock> clock() const override { return nullptr; }
  };
  auto store = std::make_shared<Clockless>(std::make_shared<ManualClock>());
  SCache cache(store, env.options());
  Loader loader(constant("v2"));
  ASSERT_TRUE(cache.put("k", "v1").ok());
  EXPECT_EQ(*cache.get_or_load("k", loader), "v1");
  env.clock->advance(seconds(10));
  ASSERT_TRUE(store->raw("k").has_value());
  EXPECT_EQ(cache.get_if_present("k"), std::nullopt);
  EXPECT_EQ(*cache.get_or_load("k", loader), "v2");
  EXPECT_EQ(loader.calls(), 1);
}

TEST(CacheTest, NegativeCachingIsOffByDefault) {
  Env env;
  SCache cache(env.store, env.options());
  Loader loader([](const std::string&) -> absl::StatusOr<std::string> {
    return absl::NotFoundError("no such row");
  });
  EXPECT_EQ(cache.get_or_load("k", loader).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(cache.get_or_load("k", loader).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(loader.calls(), 2);
}

TEST(CacheTest, NegativeCachingRemembersNotFound) {
  Env env;
  auto o = env.options();
  o.negative.ttl = seconds(5);
  SCache cache(env.store, o);
  Loader loader([](const std::string&) -> absl::StatusOr<std::string> {
    return absl::NotFoundError("no such row");
  });
  EXPECT_EQ(cache.get_or_load("k", loader).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(cache.get_or_load("k", loader).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(loader.calls(), 1);
  EXPECT_EQ(cache.stats().negative_hits, 1u);
  env.clock->advance(seconds(5));
  EXPECT_EQ(cache.get_or_load("k", loader).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(loader.calls(), 2);
  // A put ends the negative entry at once; other errors are never remembered.
  ASSERT_TRUE(cache.put("k", "now here").ok());
  EXPECT_EQ(*cache.get_or_load("k", loader), "now here");
  loader.set_answer([](const std::string&) -> absl::StatusOr<std::string> {
    return absl::UnavailableError("down");
  });
  EXPECT_FALSE(cache.get_or_load("x", loader).ok());
  EXPECT_FALSE(cache.get_or_load("x", loader).ok());
  EXPECT_EQ(loader.calls(), 4);
}

TEST(CacheTest, JitterSpreadsExpiry) {
  Env env;
  auto o = env.options();
  o.ttl = seconds(100);
  o.ttl_jitter = 0.2;
  SCache cache(env.store, o);
  const TimePoint now = env.clock->now();
  constexpr int kKeys = 1000;
  std::vector<double> ttls;
  for (int i = 0; i < kKeys; ++i) {
    const std::string k = std::to_string(i);
    ASSERT_TRUE(cache.get_or_load(k, constant("v")).ok());
    auto e = env.store->raw(k);
    ASSERT_TRUE(e.has_value());
    ttls.push_back(std::chrono::duration<double>(e->fresh_until - now).count());
    EXPECT_EQ(e->stale_until, e->fresh_until);  // no stale window configured
  }
  std::sort(ttls.begin(), ttls.end());
  EXPECT_GE(ttls.front(), 80.0);
  EXPECT_LE(ttls.back(), 120.0);
  // Spread over the whole interval, not bunched: each fifth holds a share.
  EXPECT_LT(ttls.front(), 82.0);
  EXPECT_GT(ttls.back(), 118.0);
  int low = 0, high = 0;
  for (double t : ttls) {
    low += t < 92.0;
    high += t > 108.0;
  }
  EXPECT_GT(low, kKeys / 5);
  EXPECT_GT(high, kKeys / 5);
}

TEST(CacheTest, NoJitterMeansExactTtl) {
  Env env;
  SCache cache(env.store, env.options());
  ASSERT_TRUE(cache.get_or_load("k", constant("v")).ok());
  EXPECT_EQ(env.store->raw("k")->fresh_until, env.clock->now() + seconds(10));
}

// ---- invalidation racing a load ----

TEST(CacheTest, InvalidateDuringLoadDoesNotResurrectTheOldValue) {
  Env env;
  SCache cache(env.store, env.options());
  Blocking loader([](const std::string&) -> absl::StatusOr<std::string> { return "old"; });
  absl::StatusOr<std::string> got;
  std::thread t([&] { got = cache.get_or_load("k", loader); });
  loader.wait_entered(1);                   // the loader has read "old" from the database
  ASSERT_TRUE(cache.invalidate("k").ok());  // the database changed; drop the key
  loader.open();
  t.join();
  EXPECT_EQ(*got, "old");  // the caller that asked before the change gets its answer...
  EXPECT_FALSE(env.store->raw("k").has_value());  // ...but it is not cached after it
  EXPECT_EQ(*cache.get_or_load("k", constant("new")), "new");
}

TEST(CacheTest, InvalidateAllDuringLoadDoesNotResurrect) {
  Env env;
  SCache cache(env.store, env.options());
  Blocking loader([](const std::string&) -> absl::StatusOr<std::string> { return "old"; });
  std::thread t([&] { (void)cache.get_or_load("k", loader); });
  loader.wait_entered(1);
  ASSERT_TRUE(cache.invalidate_all().ok());
  loader.open();
  t.join();
  EXPECT_EQ(env.store->size(), 0u);
}

TEST(CacheTest, PutDuringLoadWins) {
  Env env;
  SCache cache(env.store, env.options());
  Blocking loader([](const std::string&) -> absl::StatusOr<std::string> { return "loaded"; });
  std::thread t([&] { (void)cache.get_or_load("k", loader); });
  loader.wait_entered(1);
  ASSERT_TRUE(cache.put("k", "put").ok());
  loader.open();
  t.join();
  EXPECT_EQ(env.store->raw("k")->value, "put");
  EXPECT_EQ(*cache.get_or_load("k", constant("unused")), "put");
}

// ---- options ----

TEST(CacheTest, RejectsBadOptionsNamingTheField) {
  Env env;
  auto expect_throw = [&](auto mutate, const std::string& needle) {
    auto o = env.options();
    mutate(o);
    try {
      SCache c(env.store, o);
      ADD_FAILURE() << "no exception for " << needle;
    } catch (const std::invalid_argument& e) {
      EXPECT_THAT(std::string(e.what()), HasSubstr(needle));
    }
  };
  using O = CacheOptions<std::string, std::string>;
  expect_throw([](O& o) { o.ttl = milliseconds(0); }, "ttl");
  expect_throw([](O& o) { o.ttl_jitter = 1.0; }, "ttl_jitter");
  expect_throw([](O& o) { o.ttl_jitter = -0.1; }, "ttl_jitter");
  expect_throw([](O& o) { o.refresh_ahead = 1.0; }, "refresh_ahead");
  expect_throw([](O& o) { o.stale_while_revalidate = milliseconds(-1); }, "stale_while_revalidate");
  expect_throw([](O& o) { o.stale_if_error = milliseconds(-1); }, "stale_if_error");
  expect_throw([](O& o) { o.negative.ttl = milliseconds(-1); }, "negative.ttl");
  expect_throw([](O& o) { o.load_timeout = milliseconds(-1); }, "load_timeout");
  // Spans that would overflow the clock's time points (undefined behaviour).
  expect_throw([](O& o) { o.ttl = milliseconds::max(); }, "ttl must be at most 50 years");
  expect_throw([](O& o) { o.stale_if_error = std::chrono::hours(24 * 365 * 51); },
               "stale_if_error must be at most 50 years");
  expect_throw([](O& o) { o.write_back.retry_max = milliseconds::max(); },
               "write_back.retry_max must be at most 50 years");
  expect_throw([](O& o) { o.write_mode = WriteMode::kWriteThrough; },
               "write_mode = kWriteThrough needs writer.write");
  expect_throw(
      [](O& o) {
        o.write_mode = WriteMode::kWriteBack;
        o.writer.write = [](std::span<const std::pair<std::string, std::string>>) {
          return absl::OkStatus();
        };
        o.write_back.batch = 0;
      },
      "write_back.batch must be > 0");
  EXPECT_THROW(SCache(nullptr, env.options()), std::invalid_argument);
}

TEST(CacheTest, DesignatedInitializersFollowTheApiOrder) {
  auto clock = std::make_shared<ManualClock>();
  CacheOptions<std::string, int> o{
      .ttl = seconds(5),
      .stale_while_revalidate = seconds(1),
      .stale_if_error = seconds(2),
      .loader = nullptr,
      .batch_loader = nullptr,
      .write_mode = WriteMode::kNone,
      .writer = {},
      .write_back = {.delay = milliseconds(100), .journal = "", .max_dirty = 100, .batch = 16},
      .negative = {.ttl = seconds(1), .max_entries = 10},
      .ttl_jitter = 0.1,
      .refresh_ahead = 0.5,
      .load_timeout = milliseconds(10),
      .load_guard = nullptr,
      .clock = clock,
      .executor = nullptr,
      .on_refresh_error = nullptr};
  Cache<std::string, int> cache(std::make_shared<testing::MapStore<std::string, int>>(clock), o);
  EXPECT_EQ(cache.options().ttl, seconds(5));
  EXPECT_EQ(cache.options().write_back.batch, 16u);
  EXPECT_EQ(cache.options().negative.ttl, seconds(1));
}

TEST(CacheTest, EvictionsAndExpirationsComeFromTheStore) {
  struct CountingStore : testing::MapStore<std::string, std::string> {
    using MapStore::MapStore;
    StoreCounters counters() const override {
      StoreCounters c = MapStore::counters();
      c.evictions = 7;
      c.expirations = 3;
      return c;
    }
  };
  Env env;
  SCache cache(std::make_shared<CountingStore>(env.clock), env.options());
  EXPECT_EQ(cache.stats().evictions, 7u);
  EXPECT_EQ(cache.stats().expirations, 3u);
}

// ---- writes ----

using FakeDb = testing::FakeDb<std::string, std::string>;

TEST(CacheTest, WriteThroughWritesTheSystemOfRecordFirst) {
  Env env;
  FakeDb db;
  auto o = env.options();
  o.write_mode = WriteMode::kWriteThrough;
  o.writer = db.writer();
  SCache cache(env.store, o);
  ASSERT_TRUE(cache.put("k", "v1").ok());
  EXPECT_EQ(db.row("k"), "v1");
  EXPECT_EQ(cache.get_if_present("k"), "v1");
  EXPECT_EQ(cache.stats().writes, 1u);

  db.fail_all(absl::UnavailableError("db down"));
  absl::Status s = cache.put("k", "v2");
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(cache.get_if_present("k"), "v1");  // the cache is left as it was
  EXPECT_EQ(db.row("k"), "v1");
  EXPECT_EQ(cache.stats().write_failures, 1u);
}

TEST(CacheTest, WriteThroughWriterExceptionIsAnError) {
  Env env;
  auto o = env.options();
  o.write_mode = WriteMode::kWriteThrough;
  o.writer.write = [](std::span<const std::pair<std::string, std::string>>) -> absl::Status {
    throw std::runtime_error("driver crashed");
  };
  SCache cache(env.store, o);
  absl::Status s = cache.put("k", "v");
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(std::string(s.message()), HasSubstr("driver crashed"));
  EXPECT_EQ(env.store->size(), 0u);
}

TEST(CacheTest, EraseDeletesFromTheSystemOfRecordThenTheCache) {
  Env env;
  FakeDb db;
  auto o = env.options();
  o.write_mode = WriteMode::kWriteThrough;
  o.writer = db.writer();
  SCache cache(env.store, o);
  ASSERT_TRUE(cache.put("k", "v").ok());
  db.fail_all(absl::UnavailableError("db down"));
  EXPECT_FALSE(cache.erase("k").ok());
  EXPECT_EQ(cache.get_if_present("k"), "v");  // nothing dropped on a writer error
  db.fail_all(absl::OkStatus());
  ASSERT_TRUE(cache.erase("k").ok());
  EXPECT_FALSE(db.row("k").has_value());
  EXPECT_EQ(cache.get_if_present("k"), std::nullopt);
}

TEST(CacheTest, CacheAsidePutAndInvalidate) {
  Env env;
  SCache cache(env.store, env.options());
  ASSERT_TRUE(cache.put("k", "v").ok());
  EXPECT_EQ(*cache.get_or_load("k", constant("unused")), "v");
  ASSERT_TRUE(cache.invalidate("k").ok());
  EXPECT_EQ(*cache.get_or_load("k", constant("loaded")), "loaded");
  EXPECT_TRUE(cache.flush().ok());
}

}  // namespace
}  // namespace larder
