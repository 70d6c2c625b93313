// SPDX-License-Identifier: Apache-2.0
//
// The 0.2 API of Cache: a loader bound at construction (get, get_many),
// get_many over any range with per-key failures, a movable Cache, options()
// with the executor, the clock set once (store and cache agree or the
// constructor refuses), make_local_cache, compute/merge in every write mode
// (with a concurrent stress test: N threads merging +1 sum exactly), refresh,
// put_many, invalidate_many, estimated_size, CacheStats::since, and the
// removal listener. Time is a ManualClock; no sleeps.
#include <atomic>
#include <chrono>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "larder/cache.h"
#include "larder/internal/mutex.h"
#include "larder/local_cache.h"
#include "larder/local_store.h"
#include "tests/testing/cache_env.h"
#include "tests/testing/fake_db.h"

namespace larder {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using ::testing::HasSubstr;
using SCache = Cache<std::string, std::string>;
using Env = testing::CacheEnv<>;
using Map = absl::flat_hash_map<std::string, std::string>;

TEST(CacheApiTest, BoundLoaderServesGet) {
  Env env;
  auto o = env.options();
  int calls = 0;
  o.loader = [&](const std::string& k) -> absl::StatusOr<std::string> {
    ++calls;
    return "v-" + k;
  };
  SCache cache(env.store, o);
  EXPECT_EQ(cache.get("a").value(), "v-a");
  EXPECT_EQ(cache.get("a").value(), "v-a");
  EXPECT_EQ(calls, 1);
  // The per-call loader is still there.
  EXPECT_EQ(cache.get_or_load("b", [](const std::string&) { return std::string("x"); }).value(),
            "x");
}

TEST(CacheApiTest, GetWithoutLoaderIsFailedPrecondition) {
  Env env;
  SCache cache(env.store, env.options());
  absl::StatusOr<std::string> r = cache.get("a");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("CacheOptions::loader"));
  auto many = cache.get_many({std::string("a")});
  EXPECT_EQ(many.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(CacheApiTest, BatchLoaderAloneServesGetAndGetMany) {
  Env env;
  auto o = env.options();
  std::vector<std::size_t> batches;
  o.batch_loader = [&](std::span<const std::string> keys) -> absl::StatusOr<Map> {
    batches.push_back(keys.size());
    Map m;
    for (const auto& k : keys) {
      if (k != "missing") m[k] = "v-" + k;
    }
    return m;
  };
  SCache cache(env.store, o);
  EXPECT_EQ(cache.get("a").value(), "v-a");
  EXPECT_EQ(cache.get("missing").status().code(), absl::StatusCode::kNotFound);
  auto r = cache.get_many(
      {std::string("a"), std::string("b"), std::string("c"), std::string("missing")});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->size(), 3u);  // a (hit), b, c; missing is absent
  EXPECT_EQ(r->at("c"), "v-c");
  ASSERT_EQ(batches.size(), 3u);
  EXPECT_EQ(batches[2], 3u);  // one batch for b, c, missing
}

TEST(CacheApiTest, GetManyAcceptsAnyRangeOfKeys) {
  Env env;
  auto o = env.options();
  o.batch_loader = [](std::span<const std::string> keys) -> absl::StatusOr<Map> {
    Map m;
    for (const auto& k : keys) m[k] = "v-" + k;
    return m;
  };
  SCache cache(env.store, o);
  std::vector<std::string> vec{"a", "b", "a"};
  std::set<std::string> set{"c", "d"};
  std::list<std::string> list{"e"};
  const std::string arr[] = {"f", "g"};
  EXPECT_EQ(cache.get_many(vec)->size(), 2u);
  EXPECT_EQ(cache.get_many(set)->size(), 2u);
  EXPECT_EQ(cache.get_many(list)->size(), 1u);
  EXPECT_EQ(cache.get_many(arr)->size(), 2u);
  EXPECT_EQ(cache.get_many(std::span<const std::string>(vec))->size(), 2u);
  EXPECT_EQ(cache.get_many({std::string("h")})->at("h"), "v-h");
  // Per-call batch loader over an initializer list, and over a set.
  auto per_call = [](std::span<const std::string> keys) {
    Map m;
    for (const auto& k : keys) m[k] = "p-" + k;
    return m;
  };
  EXPECT_EQ(cache.get_many({std::string("x")}, per_call)->at("x"), "p-x");
  EXPECT_EQ(cache.get_many(std::set<std::string>{"y"}, per_call)->at("y"), "p-y");
}

TEST(CacheApiTest, GetManyKeepsTheKeysThatLoadedWhenOthersFail) {
  Env env;
  SCache cache(env.store, env.options());
  ASSERT_TRUE(cache.put("hit", "cached").ok());
  auto failing = [](std::span<const std::string>) -> absl::StatusOr<Map> {
    return absl::UnavailableError("db down");
  };
  auto r = cache.get_many({std::string("hit"), std::string("miss")}, failing);
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(r->size(), 1u);
  EXPECT_EQ(r->at("hit"), "cached");
  ASSERT_EQ(r.errors().size(), 1u);
  EXPECT_EQ(r.errors().at("miss").code(), absl::StatusCode::kUnavailable);
  // As a StatusOr it is the error (what 0.1 returned).
  absl::StatusOr<Map> as_status_or =
      cache.get_many({std::string("hit"), std::string("miss")}, failing);
  EXPECT_FALSE(as_status_or.ok());
}

TEST(CacheApiTest, BoundGetManyWithoutBatchLoaderReportsEachKey) {
  Env env;
  auto o = env.options();
  o.loader = [](const std::string& k) -> absl::StatusOr<std::string> {
    if (k == "bad") return absl::InternalError("broken row");
    if (k == "none") return absl::NotFoundError("no row");
    return "v-" + k;
  };
  SCache cache(env.store, o);
  auto r = cache.get_many(std::vector<std::string>{"a", "bad", "none", "b"});
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r->size(), 2u);
  EXPECT_EQ(r.errors().size(), 1u);
  EXPECT_EQ(r.errors().at("bad").code(), absl::StatusCode::kInternal);
}

TEST(CacheApiTest, CacheIsMovable) {
  Env env;
  auto o = env.options();
  o.loader = [](const std::string& k) -> absl::StatusOr<std::string> { return "v-" + k; };
  SCache a(env.store, o);
  ASSERT_TRUE(a.get("k").ok());
  SCache b(std::move(a));
  EXPECT_EQ(b.get_if_present("k"), "v-k");
  SCache c(env.store, env.options());
  c = std::move(b);
  EXPECT_EQ(c.get_if_present("k"), "v-k");
  EXPECT_EQ(c.stats().misses, 1u);
}

TEST(CacheApiTest, MoveAssignmentDrainsTheOldWriteBack) {
  Env env;
  internal::Mutex mu;
  std::map<std::string, std::string> rows;
  auto o = env.options();
  o.write_mode = WriteMode::kWriteBack;
  o.write_back.delay = seconds(3600);
  o.writer.write = [&](std::span<const std::pair<std::string, std::string>> batch) {
    internal::MutexLock l(&mu);
    for (const auto& [k, v] : batch) rows[k] = v;
    return absl::OkStatus();
  };
  SCache a(env.store, o);
  ASSERT_TRUE(a.put("k", "v").ok());
  a = SCache(env.store, env.options());  // the old cache drains as its destructor would
  internal::MutexLock l(&mu);
  EXPECT_EQ(rows["k"], "v");
}

TEST(CacheApiTest, OptionsShowTheExecutorAndClock) {
  Env env;
  SCache cache(env.store, env.options());
  EXPECT_EQ(cache.options().executor, env.executor);
  EXPECT_EQ(cache.options().clock, env.clock);
  EXPECT_EQ(cache.clock(), env.clock);
  SCache defaulted(env.store, {});
  EXPECT_NE(defaulted.options().executor, nullptr);
  EXPECT_EQ(defaulted.options().clock, env.clock);  // the store's
}

TEST(CacheApiTest, ADifferentClockThanTheStoresIsRefused) {
  Env env;
  auto o = env.options();
  o.clock = std::make_shared<ManualClock>();
  try {
    SCache cache(env.store, o);
    FAIL() << "a clock mismatch was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), HasSubstr("clock"));
    EXPECT_THAT(e.what(), HasSubstr("Store::clock()"));
  }
  // A LocalStore on the system clock and a cache on a ManualClock: refused.
  auto local = std::make_shared<LocalStore<std::string, std::string>>();
  EXPECT_THROW(SCache(local, {.clock = std::make_shared<ManualClock>()}), std::invalid_argument);
}

TEST(CacheApiTest, TheStoresClockIsTheCachesWhenNoneIsGiven) {
  auto clock = std::make_shared<ManualClock>(from_unix_millis(1'700'000'000'000));
  auto store = std::make_shared<LocalStore<std::string, std::string>>(
      LocalStoreOptions{.max_entries = 100, .clock = clock});
  int calls = 0;
  SCache cache(store, {.ttl = seconds(30), .loader = [&](const std::string&) {
                         ++calls;
                         return std::string("v");
                       }});
  EXPECT_EQ(cache.clock(), clock);
  ASSERT_TRUE(cache.get("k").ok());
  clock->advance(seconds(29));
  ASSERT_TRUE(cache.get("k").ok());
  EXPECT_EQ(calls, 1);
  clock->advance(seconds(2));  // past the ttl on the one clock
  ASSERT_TRUE(cache.get("k").ok());
  EXPECT_EQ(calls, 2);
}

TEST(CacheApiTest, MakeLocalCacheHandsTheCachesClockToTheStore) {
  auto clock = std::make_shared<ManualClock>(from_unix_millis(1'700'000'000'000));
  int calls = 0;
  auto users = make_local_cache<int, std::string>({.max_entries = 100},
                                                  {.ttl = seconds(30),
                                                   .loader =
                                                       [&](int id) {
                                                         ++calls;
                                                         return "user-" + std::to_string(id);
                                                       },
                                                   .clock = clock});
  EXPECT_EQ(users.get(42).value(), "user-42");
  clock->advance(seconds(31));
  EXPECT_EQ(users.get(42).value(), "user-42");
  EXPECT_EQ(calls, 2);
  EXPECT_THROW((make_local_cache<int, int>({.clock = std::make_shared<ManualClock>()},
                                           {.clock = std::make_shared<ManualClock>()})),
               std::invalid_argument);
}

TEST(CacheApiTest, MakeLocalCacheRemovalListenerSeesEvictionsAndErases) {
  std::atomic<int> explicit_removals{0}, evictions{0};
  auto cache =
      make_local_cache<int, int>({.max_entries = 4, .shards = 1}, {.ttl = seconds(60)},
                                 {.on_removal = [&](const int&, const int&, RemovalCause cause) {
                                   if (cause == RemovalCause::kExplicit) ++explicit_removals;
                                   if (cause == RemovalCause::kEvicted) ++evictions;
                                 }});
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(cache.put(i, i).ok());
  ASSERT_TRUE(cache.invalidate(99).ok());
  EXPECT_GT(evictions.load() + explicit_removals.load(), 90);
  EXPECT_LE(cache.estimated_size(), 4u);
}

TEST(CacheApiTest, PutManyInvalidateManyAndEstimatedSize) {
  Env env;
  SCache cache(env.store, env.options());
  ASSERT_TRUE(cache.put_many({{"a", "1"}, {"b", "2"}, {"c", "3"}}).ok());
  std::vector<std::pair<std::string, std::string>> more{{"d", "4"}};
  ASSERT_TRUE(cache.put_many(more).ok());
  EXPECT_EQ(cache.estimated_size(), 4u);
  EXPECT_EQ(cache.get_if_present("b"), "2");
  ASSERT_TRUE(cache.invalidate_many({std::string("a"), std::string("b")}).ok());
  ASSERT_TRUE(cache.invalidate_many(std::vector<std::string>{"c"}).ok());
  EXPECT_EQ(cache.get_if_present("a"), std::nullopt);
  EXPECT_EQ(cache.get_if_present("c"), std::nullopt);
  EXPECT_EQ(cache.get_if_present("d"), "4");
  EXPECT_EQ(cache.estimated_size(), 1u);
}

TEST(CacheApiTest, RefreshReloadsAFreshKey) {
  Env env;
  auto o = env.options();
  int version = 0;
  o.loader = [&](const std::string&) -> absl::StatusOr<std::string> {
    return "v" + std::to_string(++version);
  };
  SCache cache(env.store, o);
  EXPECT_EQ(cache.get("k").value(), "v1");
  EXPECT_EQ(cache.get("k").value(), "v1");  // fresh: cached
  EXPECT_EQ(cache.refresh("k").value(), "v2");
  EXPECT_EQ(cache.get("k").value(), "v2");
  SCache unbound(env.store, env.options());
  EXPECT_EQ(unbound.refresh("k").status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(CacheApiTest, StatsSinceIsTheDelta) {
  Env env;
  auto o = env.options();
  o.loader = [](const std::string& k) -> absl::StatusOr<std::string> { return k; };
  SCache cache(env.store, o);
  ASSERT_TRUE(cache.get("a").ok());
  const CacheStats before = cache.stats();
  ASSERT_TRUE(cache.get("a").ok());
  ASSERT_TRUE(cache.get("b").ok());
  const CacheStats d = cache.stats().since(before);
  EXPECT_EQ(d.hits, 1u);
  EXPECT_EQ(d.misses, 1u);
  EXPECT_EQ(d.loads, 1u);
  EXPECT_DOUBLE_EQ(d.hit_ratio(), 0.5);
  EXPECT_EQ((cache.stats() - before).loads, 1u);
}

// ---- compute / merge ----

// A system of record for a counter: rows, written by the Writer.
using Counters = testing::FakeDb<std::string, long>;

CacheOptions<std::string, long> counter_options(WriteMode mode, Counters& db,
                                                std::shared_ptr<Clock> clock) {
  CacheOptions<std::string, long> o;
  o.ttl = seconds(3600);
  o.write_mode = mode;
  if (mode != WriteMode::kNone) o.writer = db.writer();
  o.write_back.delay = milliseconds(0);
  // The loader reads the system of record (kNone: nothing is written there).
  o.loader = [&db](const std::string& k) -> absl::StatusOr<long> {
    std::optional<long> v = db.row(k);
    if (!v) return absl::NotFoundError("no row");
    return *v;
  };
  o.clock = std::move(clock);
  return o;
}

class CacheComputeTest : public ::testing::TestWithParam<WriteMode> {};

TEST_P(CacheComputeTest, ComputeReadsModifiesAndWrites) {
  auto clock = std::make_shared<ManualClock>(from_unix_millis(1'700'000'000'000));
  Counters db;
  auto cache = make_local_cache<std::string, long>({.max_entries = 1000},
                                                   counter_options(GetParam(), db, clock));
  absl::StatusOr<std::optional<long>> r = cache.compute("k", [](std::optional<long> cur) {
    EXPECT_EQ(cur, std::nullopt);
    return std::optional<long>(10);
  });
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(**r, 10);
  EXPECT_EQ(cache.merge("k", 5, std::plus<>()).value(), 15);
  EXPECT_EQ(cache.get("k").value(), 15);
  // nullopt erases.
  ASSERT_TRUE(cache.compute("k", [](std::optional<long>) { return std::optional<long>(); }).ok());
  EXPECT_EQ(cache.get_if_present("k"), std::nullopt);
  // A throwing function changes nothing.
  ASSERT_TRUE(cache.put("t", 1).ok());
  auto thrown = cache.compute(
      "t", [](std::optional<long>) -> std::optional<long> { throw std::runtime_error("boom"); });
  EXPECT_EQ(thrown.status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(cache.get("t").value(), 1);
  // A function that writes its own key gets kFailedPrecondition (not a deadlock).
  absl::Status inner;
  ASSERT_TRUE(cache
                  .compute("t",
                           [&](std::optional<long> cur) {
                             inner = cache.put("t", 7);
                             return cur;
                           })
                  .ok());
  if (GetParam() != WriteMode::kNone) {
    EXPECT_EQ(inner.code(), absl::StatusCode::kFailedPrecondition);
  }
  ASSERT_TRUE(cache.flush().ok());
  if (GetParam() != WriteMode::kNone) {
    EXPECT_EQ(db.row("k"), std::nullopt);
    EXPECT_EQ(db.row("t"), 1);
  }
}

TEST_P(CacheComputeTest, MergeStartsFromTheSystemOfRecord) {
  if (GetParam() == WriteMode::kNone) GTEST_SKIP() << "kNone writes nothing to the database";
  auto clock = std::make_shared<ManualClock>(from_unix_millis(1'700'000'000'000));
  Counters db;
  db.set("views", 100);
  auto cache = make_local_cache<std::string, long>({.max_entries = 1000},
                                                   counter_options(GetParam(), db, clock));
  EXPECT_EQ(cache.merge("views", 1, std::plus<>()).value(), 101);
  ASSERT_TRUE(cache.flush().ok());
  EXPECT_EQ(db.row("views"), 101);
}

// N threads merging +1 into a few keys: every increment counts, in the cache
// and (after flush) in the system of record.
TEST_P(CacheComputeTest, ConcurrentMergesSumExactly) {
  auto clock = std::make_shared<ManualClock>(from_unix_millis(1'700'000'000'000));
  Counters db;
  auto cache = make_local_cache<std::string, long>({.max_entries = 1000},
                                                   counter_options(GetParam(), db, clock));
  constexpr int kThreads = 6;
  constexpr int kPerThread = 400;
  const std::vector<std::string> keys{"a", "b"};
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const std::string& k = keys[static_cast<std::size_t>(i + t) % keys.size()];
        // The yield inside the update widens the read-modify-write window:
        // without the key's turn, another thread's merge lands inside it.
        auto add = [](long cur, long d) {
          std::this_thread::yield();
          return cur + d;
        };
        if (!cache.merge(k, 1L, add).ok()) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  long total = 0;
  for (const auto& k : keys) total += cache.get(k).value();
  EXPECT_EQ(total, kThreads * kPerThread);
  ASSERT_TRUE(cache.flush().ok());
  if (GetParam() != WriteMode::kNone) {
    long in_db = 0;
    for (const auto& k : keys) in_db += db.row(k).value_or(0);
    EXPECT_EQ(in_db, kThreads * kPerThread);
  }
}

INSTANTIATE_TEST_SUITE_P(AllWriteModes, CacheComputeTest,
                         ::testing::Values(WriteMode::kNone, WriteMode::kWriteThrough,
                                           WriteMode::kWriteBack),
                         [](const ::testing::TestParamInfo<WriteMode>& i) {
                           switch (i.param) {
                             case WriteMode::kNone:
                               return std::string("CacheAside");
                             case WriteMode::kWriteThrough:
                               return std::string("WriteThrough");
                             case WriteMode::kWriteBack:
                               return std::string("WriteBack");
                           }
                           return std::string("unknown");
                         });

}  // namespace
}  // namespace larder
