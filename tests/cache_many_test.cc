// SPDX-License-Identifier: Apache-2.0
//
// Cache<K, V>::get_many: one store batch, one loader batch, per-key
// single-flight shared with get_or_load.
#include <atomic>
#include <chrono>
#include <latch>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "larder/cache.h"
#include "tests/testing/blocking_loader.h"
#include "tests/testing/cache_env.h"
#include "tests/testing/fake_db.h"
#include "tests/testing/recording_loader.h"
#include "tests/testing/testing.h"

namespace larder {
namespace {

using std::chrono::seconds;
using ::testing::UnorderedElementsAre;
using ::testing::UnorderedElementsAreArray;
using Env = testing::CacheEnv<>;
using SCache = Cache<std::string, std::string>;
using Map = absl::flat_hash_map<std::string, std::string>;
using Batch = testing::RecordingBatchLoader<std::string, std::string>;

absl::StatusOr<Map> echo(std::span<const std::string> keys) {
  Map m;
  for (const auto& k : keys) m[k] = "v:" + k;
  return m;
}

std::vector<std::string> key_range(int from, int to) {
  std::vector<std::string> out;
  for (int i = from; i < to; ++i) out.push_back("k" + std::to_string(i));
  return out;
}

TEST(CacheManyTest, OneStoreBatchAndOneLoaderCallForAllMisses) {
  Env env;
  SCache cache(env.store, env.options());
  for (const auto& k : key_range(0, 30)) ASSERT_TRUE(cache.put(k, "v:" + k).ok());
  Batch load(echo);
  const std::vector<std::string> keys = key_range(0, 100);
  const int batch_gets_before = env.store->batch_gets.load();
  auto got = cache.get_many(std::span<const std::string>(keys), load);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->size(), 100u);
  for (const auto& k : keys) EXPECT_EQ(got->at(k), "v:" + k);
  ASSERT_EQ(load.calls(), 1);
  EXPECT_THAT(load.batches()[0], UnorderedElementsAreArray(key_range(30, 100)));
  // One batch read, plus the leader's one batch re-read of the keys it won.
  EXPECT_EQ(env.store->batch_gets.load() - batch_gets_before, 2);
  EXPECT_EQ(env.store->gets.load(), 0);
  CacheStats s = cache.stats();
  EXPECT_EQ(s.hits, 30u);
  EXPECT_EQ(s.misses, 70u);
  EXPECT_EQ(s.loads, 1u);
  // Now everything is cached: no loader call.
  got = cache.get_many(std::span<const std::string>(keys), load);
  EXPECT_EQ(got->size(), 100u);
  EXPECT_EQ(load.calls(), 1);
}

TEST(CacheManyTest, DuplicatesAreLoadedOnce) {
  Env env;
  SCache cache(env.store, env.options());
  Batch load(echo);
  std::vector<std::string> keys{"a", "b", "a", "a"};
  auto got = cache.get_many(std::span<const std::string>(keys), load);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->size(), 2u);
  EXPECT_THAT(load.batches()[0], UnorderedElementsAre("a", "b"));
}

// write_back_options: env's options writing back to db, each put held for
// 100 ms (dirty until then, or until flush()).
CacheOptions<std::string, std::string> write_back_options(
    const Env& env, testing::FakeDb<std::string, std::string>& db) {
  auto o = env.options();
  o.write_mode = WriteMode::kWriteBack;
  o.writer = db.writer();
  o.write_back.delay = std::chrono::milliseconds(100);
  return o;
}

// A MapStore that records the keys of each batch read.
class BatchRecordingStore : public testing::MapStore<std::string, std::string> {
 public:
  using MapStore::MapStore;
  absl::StatusOr<std::vector<std::optional<Entry<std::string>>>> get_many(
      std::span<const std::string> keys) override {
    {
      internal::MutexLock l(&mu_);
      batches_.emplace_back(keys.begin(), keys.end());
      data_.push_back(keys.data());
    }
    return MapStore::get_many(keys);
  }
  std::vector<std::vector<std::string>> batches() const {
    internal::MutexLock l(&mu_);
    return batches_;
  }
  // data: where each batch's keys were (the caller's array, or a copy).
  std::vector<const std::string*> data() const {
    internal::MutexLock l(&mu_);
    return data_;
  }

 private:
  mutable internal::Mutex mu_;
  std::vector<std::vector<std::string>> batches_ ABSL_GUARDED_BY(mu_);
  std::vector<const std::string*> data_ ABSL_GUARDED_BY(mu_);
};

// WarmBatch: a cache over a BatchRecordingStore with keys [0, n) put, and a
// loader that echoes. expect_read_in_place: the batch just read was one
// store read of the caller's own array (no copy), every key a hit, no load.
struct WarmBatch {
  explicit WarmBatch(int n) : keys(key_range(0, n)) {
    for (const auto& k : keys) EXPECT_TRUE(cache.put(k, "v:" + k).ok());
  }
  void expect_read_in_place() const {
    ASSERT_EQ(store->data().size(), 1u);
    EXPECT_EQ(store->data()[0], keys.data());
    EXPECT_EQ(cache.stats().hits, keys.size());
    EXPECT_EQ(load.calls(), 0);
  }
  Env env;
  std::shared_ptr<BatchRecordingStore> store = std::make_shared<BatchRecordingStore>(env.clock);
  SCache cache{store, env.options()};
  const std::vector<std::string> keys;
  Batch load{echo};
};

// The common batch (no key repeated, none dirty) is read from the caller's
// keys in place, not from a copy of them.
TEST(CacheManyTest, ABatchWithoutRepeatsIsReadFromTheCallersKeys) {
  WarmBatch w(50);
  auto got = w.cache.get_many(w.keys, w.load);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->size(), w.keys.size());
  w.expect_read_in_place();
}

// A batch larger than get_many's on-stack repeat table (128 keys), repeats
// placed early, late and next to each other: the store reads each key once,
// in first-occurrence order, and each key is counted once.
TEST(CacheManyTest, RepeatsAnywhereInALargeBatchAreReadAndCountedOnce) {
  Env env;
  auto store = std::make_shared<BatchRecordingStore>(env.clock);
  SCache cache(store, env.options());
  const std::vector<std::string> unique = key_range(0, 300);
  for (const auto& k : key_range(0, 150)) ASSERT_TRUE(cache.put(k, "v:" + k).ok());
  std::vector<std::string> keys;
  for (std::size_t i = 0; i < unique.size(); ++i) {
    keys.push_back(unique[i]);
    if (i == 1) keys.push_back("k0");      // a hit, repeated at once
    if (i == 200) keys.push_back("k250");  // a miss, repeated before its first read
    if (i == 299) {
      keys.push_back("k299");
      keys.push_back("k7");
      keys.push_back("k299");
    }
  }
  // Each key once, where it first occurs (k250 right after k200).
  std::vector<std::string> first_seen = key_range(0, 201);
  first_seen.push_back("k250");
  for (const auto& k : key_range(201, 300)) {
    if (k != "k250") first_seen.push_back(k);
  }
  Batch load(echo);
  auto got = cache.get_many(keys, load);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->size(), unique.size());
  for (const auto& k : unique) EXPECT_EQ(got->at(k), "v:" + k) << k;
  ASSERT_GE(store->batches().size(), 1u);
  EXPECT_EQ(store->batches()[0], first_seen);
  ASSERT_EQ(load.calls(), 1);
  EXPECT_THAT(load.batches()[0], UnorderedElementsAreArray(key_range(150, 300)));
  CacheStats st = cache.stats();
  EXPECT_EQ(st.hits, 150u);
  EXPECT_EQ(st.misses, 150u);
  // All cached now: one read of the unique keys, every one a hit.
  got = cache.get_many(keys, load);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->size(), unique.size());
  EXPECT_EQ(store->batches().back(), first_seen);
  EXPECT_EQ(cache.stats().hits, 150u + 300u);
  EXPECT_EQ(load.calls(), 1);
}

// With write-back, keys with a pending write (in the middle of the batch,
// one repeated) are answered by the write-back and left out of the store
// read; the keys around them are read as usual.
TEST(CacheManyTest, DirtyKeysInTheMiddleOfABatchAreAnsweredByTheWriteBack) {
  Env env;
  testing::FakeDb<std::string, std::string> db;
  auto store = std::make_shared<BatchRecordingStore>(env.clock);
  SCache cache(store, write_back_options(env, db));
  for (const auto& k : key_range(0, 6)) ASSERT_TRUE(cache.put(k, "v:" + k).ok());
  ASSERT_TRUE(cache.flush().ok());
  ASSERT_TRUE(cache.put("k2", "pending").ok());  // dirty
  ASSERT_TRUE(cache.erase("k4").ok());           // dirty: a pending erase
  const std::vector<std::string> keys{"k0", "k1", "k2", "k3", "k2", "k4", "k5", "k9"};
  Batch load(echo);
  auto got = cache.get_many(keys, load);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_THAT(*got, UnorderedElementsAre(std::pair<const std::string, std::string>("k0", "v:k0"),
                                         std::pair<const std::string, std::string>("k1", "v:k1"),
                                         std::pair<const std::string, std::string>("k2", "pending"),
                                         std::pair<const std::string, std::string>("k3", "v:k3"),
                                         std::pair<const std::string, std::string>("k5", "v:k5"),
                                         std::pair<const std::string, std::string>("k9", "v:k9")));
  ASSERT_GE(store->batches().size(), 1u);
  EXPECT_EQ(store->batches()[0], (std::vector<std::string>{"k0", "k1", "k3", "k5", "k9"}));
  ASSERT_EQ(load.calls(), 1);
  EXPECT_THAT(load.batches()[0], UnorderedElementsAre("k9"));
  // The write-back's answers count too: k2's pending value a hit, k4's
  // pending erase a miss (once each, though k2 is asked twice).
  EXPECT_EQ(cache.stats().hits, 5u);
  EXPECT_EQ(cache.stats().misses, 2u);
}

TEST(CacheManyTest, KeysTheLoaderDoesNotReturnAreAbsentAndCanBeNegativelyCached) {
  Env env;
  auto o = env.options();
  o.negative.ttl = seconds(5);
  SCache cache(env.store, o);
  Batch load([](std::span<const std::string> keys) -> absl::StatusOr<Map> {
    Map m;
    for (const auto& k : keys) {
      if (k != "missing") m[k] = "v:" + k;
    }
    return m;
  });
  std::vector<std::string> keys{"a", "missing"};
  auto got = cache.get_many(std::span<const std::string>(keys), load);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->size(), 1u);
  EXPECT_FALSE(got->contains("missing"));
  got = cache.get_many(std::span<const std::string>(keys), load);
  EXPECT_EQ(got->size(), 1u);
  EXPECT_EQ(load.calls(), 1);  // "missing" remembered as absent
  EXPECT_EQ(cache.stats().negative_hits, 1u);
  // get_or_load sees the same negative entry.
  EXPECT_EQ(cache.get_or_load("missing", [](const std::string&) { return std::string("x"); })
                .status()
                .code(),
            absl::StatusCode::kNotFound);
}

TEST(CacheManyTest, LoaderErrorIsReturnedAndNothingCached) {
  Env env;
  SCache cache(env.store, env.options());
  Batch load([](std::span<const std::string>) -> absl::StatusOr<Map> {
    return absl::UnavailableError("db down");
  });
  std::vector<std::string> keys{"a", "b"};
  auto got = cache.get_many(std::span<const std::string>(keys), load);
  EXPECT_EQ(got.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(env.store->size(), 0u);
  EXPECT_EQ(cache.stats().load_failures, 1u);
}

TEST(CacheManyTest, ThrowingBatchLoaderBecomesInternal) {
  Env env;
  SCache cache(env.store, env.options());
  std::vector<std::string> keys{"a"};
  auto got = cache.get_many(
      std::span<const std::string>(keys),
      [](std::span<const std::string>) -> Map { throw std::runtime_error("query failed"); });
  EXPECT_EQ(got.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(std::string(got.status().message()), ::testing::HasSubstr("query failed"));
}

TEST(CacheManyTest, LoaderErrorFallsBackToStaleValues) {
  Env env;
  auto o = env.options();
  o.stale_if_error = seconds(60);
  SCache cache(env.store, o);
  ASSERT_TRUE(cache.put("a", "old").ok());
  env.clock->advance(seconds(20));
  Batch load([](std::span<const std::string>) -> absl::StatusOr<Map> {
    return absl::UnavailableError("db down");
  });
  std::vector<std::string> keys{"a"};
  auto got = cache.get_many(std::span<const std::string>(keys), load);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->at("a"), "old");
  keys.push_back("b");  // no stale value for b: the error comes back
  got = cache.get_many(std::span<const std::string>(keys), load);
  EXPECT_EQ(got.status().code(), absl::StatusCode::kUnavailable);
}

TEST(CacheManyTest, StaleKeysAreServedAndRefreshedInOneBackgroundBatch) {
  Env env;
  auto o = env.options();
  o.stale_while_revalidate = seconds(10);
  SCache cache(env.store, o);
  for (const auto& k : key_range(0, 5)) ASSERT_TRUE(cache.put(k, "old").ok());
  env.clock->advance(seconds(12));
  Batch load(echo);
  const auto keys = key_range(0, 5);
  auto got = cache.get_many(std::span<const std::string>(keys), load);
  ASSERT_TRUE(got.ok());
  for (const auto& k : keys) EXPECT_EQ(got->at(k), "old");
  EXPECT_EQ(load.calls(), 0);
  EXPECT_EQ(env.executor->run_all(), 1u);
  ASSERT_EQ(load.calls(), 1);
  EXPECT_THAT(load.batches()[0], UnorderedElementsAreArray(keys));
  got = cache.get_many(std::span<const std::string>(keys), load);
  for (const auto& k : keys) EXPECT_EQ(got->at(k), "v:" + k);
  EXPECT_EQ(cache.stats().refreshes, 5u);
}

// A failed background batch refresh pauses those keys' refreshes for
// error_backoff: the stale values keep being served without a new batch.
TEST(CacheManyTest, FailedBatchRefreshIsNotRetriedWithinTheBackoff) {
  Env env;
  auto o = env.options();
  o.stale_while_revalidate = seconds(10);
  o.error_backoff = seconds(2);
  SCache cache(env.store, o);
  for (const auto& k : key_range(0, 3)) ASSERT_TRUE(cache.put(k, "old").ok());
  env.clock->advance(seconds(12));
  Batch load([](std::span<const std::string>) -> absl::StatusOr<Map> {
    return absl::UnavailableError("db down");
  });
  const auto keys = key_range(0, 3);
  ASSERT_TRUE(cache.get_many(std::span<const std::string>(keys), load).ok());
  EXPECT_EQ(env.executor->run_all(), 1u);
  for (int i = 0; i < 5; ++i) {
    auto got = cache.get_many(std::span<const std::string>(keys), load);
    ASSERT_TRUE(got.ok());
    for (const auto& k : keys) EXPECT_EQ(got->at(k), "old");
  }
  EXPECT_EQ(env.executor->pending(), 0u);
  EXPECT_EQ(load.calls(), 1);
  load.set_answer(echo);
  env.clock->advance(seconds(2));
  ASSERT_TRUE(cache.get_many(std::span<const std::string>(keys), load).ok());
  EXPECT_EQ(env.executor->run_all(), 1u);
  auto got = cache.get_many(std::span<const std::string>(keys), load);
  for (const auto& k : keys) EXPECT_EQ(got->at(k), "v:" + k);
  EXPECT_EQ(load.calls(), 2);
}

// load_timeout applies to get_many: keys with a stale value to fall back on
// get it when the batch (on the executor) does not finish in time; the batch
// goes on and is stored.
TEST(CacheManyTest, LoadTimeoutServesStaleKeysAndStoresTheLateBatch) {
  Env env;
  auto o = env.options();
  o.stale_if_error = seconds(60);
  o.load_timeout = std::chrono::milliseconds(20);
  SCache cache(env.store, o);
  const std::vector<std::string> keys = {"a", "b"};
  for (const auto& k : keys) ASSERT_TRUE(cache.put(k, "old").ok());
  env.clock->advance(seconds(20));  // past ttl: a load, with stale values to fall back on
  Batch load(echo);
  // The batch is queued on the (manual) executor and does not run; the
  // caller waits until load_timeout of Clock time passes.
  std::atomic<bool> returned{false};
  decltype(cache.get_many(std::span<const std::string>(keys), load)) got;
  std::thread caller([&] {
    got = cache.get_many(std::span<const std::string>(keys), load);
    returned.store(true);
  });
  EXPECT_TRUE(testing::eventually([&] { return env.executor->pending() == 1; }))
      << "the batch was not queued";
  env.clock->advance(std::chrono::milliseconds(19));
  EXPECT_FALSE(testing::eventually([&] { return returned.load(); }, std::chrono::milliseconds(50)))
      << "the caller gave up before load_timeout of Clock time (on real time?)";
  env.clock->advance(std::chrono::milliseconds(1));
  EXPECT_TRUE(testing::eventually([&] { return returned.load(); }))
      << "the caller still waits past load_timeout of Clock time";
  if (!returned.load()) env.executor->run_all();  // let it go, to fail instead of hanging
  caller.join();
  ASSERT_TRUE(got.ok());
  for (const auto& k : keys) EXPECT_EQ(got->at(k), "old");
  EXPECT_EQ(cache.stats().load_timeouts, 2u);
  EXPECT_EQ(load.calls(), 0);  // queued on the (manual) executor
  EXPECT_EQ(env.executor->run_all(), 1u);
  ASSERT_EQ(load.calls(), 1);
  got = cache.get_many(std::span<const std::string>(keys), load);
  for (const auto& k : keys) EXPECT_EQ(got->at(k), "v:" + k);
  EXPECT_EQ(load.calls(), 1);  // the late batch was stored
}

// Keys without a stale value wait for that batch; one batch for all.
TEST(CacheManyTest, LoadTimeoutBatchAlsoAnswersKeysWithoutStaleValues) {
  Env env;
  auto o = env.options();
  o.stale_if_error = seconds(60);
  o.load_timeout = seconds(30);  // generous: the pool runs the batch long before
  o.executor = std::make_shared<ThreadPoolExecutor>(ThreadPoolOptions{.threads = 1});
  SCache cache(env.store, o);
  ASSERT_TRUE(cache.put("a", "old").ok());
  env.clock->advance(seconds(20));
  Batch load(echo);
  const std::vector<std::string> keys = {"a", "c"};
  auto got = cache.get_many(std::span<const std::string>(keys), load);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->at("a"), "v:a");
  EXPECT_EQ(got->at("c"), "v:c");
  ASSERT_EQ(load.calls(), 1);
  EXPECT_THAT(load.batches()[0], UnorderedElementsAre("a", "c"));
  EXPECT_EQ(cache.stats().load_timeouts, 0u);
}

// A key already loading by get_or_load is awaited by get_many, not loaded twice.
TEST(CacheManyTest, AwaitsAKeyLoadingInGetOrLoad) {
  Env env;
  SCache cache(env.store, env.options());
  testing::BlockingLoader<std::string, std::string> single(
      [](const std::string& k) -> absl::StatusOr<std::string> { return "single:" + k; });
  std::thread t([&] { EXPECT_EQ(*cache.get_or_load("b", single), "single:b"); });
  single.wait_entered(1);
  Batch load(echo);
  absl::StatusOr<Map> got;
  std::thread u([&] {
    std::vector<std::string> keys{"a", "b", "c"};
    got = cache.get_many(std::span<const std::string>(keys), load);
  });
  EXPECT_TRUE(testing::eventually([&] { return cache.stats().coalesced >= 1; }))
      << "waited 20 s for 1 caller to join the flight";  // u waits on "b"
  single.open();
  t.join();
  u.join();
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->at("a"), "v:a");
  EXPECT_EQ(got->at("b"), "single:b");
  EXPECT_EQ(got->at("c"), "v:c");
  ASSERT_EQ(load.calls(), 1);
  EXPECT_THAT(load.batches()[0], UnorderedElementsAre("a", "c"));
  EXPECT_EQ(single.calls(), 1);
}

// And get_or_load (or another get_many) joins a key a get_many batch is loading.
TEST(CacheManyTest, GetOrLoadJoinsAKeyInABatch) {
  Env env;
  SCache cache(env.store, env.options());
  std::latch in_batch(1), release(1);
  Batch load([&](std::span<const std::string> keys) -> absl::StatusOr<Map> {
    in_batch.count_down();
    release.wait();
    return echo(keys);
  });
  absl::StatusOr<Map> got;
  std::thread u([&] {
    std::vector<std::string> keys{"a", "b"};
    got = cache.get_many(std::span<const std::string>(keys), load);
  });
  in_batch.wait();
  testing::RecordingLoader<std::string, std::string> single(
      [](const std::string&) -> absl::StatusOr<std::string> { return "single"; });
  absl::StatusOr<std::string> a;
  std::thread t([&] { a = cache.get_or_load("a", single); });
  absl::StatusOr<Map> second;
  std::thread w([&] {
    std::vector<std::string> keys{"b", "c"};
    second = cache.get_many(std::span<const std::string>(keys), load);
  });
  EXPECT_TRUE(testing::eventually([&] { return cache.stats().coalesced >= 2; }))
      << "waited 20 s for 2 callers to join the flight";
  release.count_down();
  t.join();
  u.join();
  w.join();
  EXPECT_EQ(*a, "v:a");
  EXPECT_EQ(single.calls(), 0);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->at("b"), "v:b");
  EXPECT_EQ(second->at("c"), "v:c");
  auto batches = load.batches();
  ASSERT_EQ(batches.size(), 2u);
  EXPECT_THAT(batches[0], UnorderedElementsAre("a", "b"));
  EXPECT_THAT(batches[1], UnorderedElementsAre("c"));  // b was awaited, not reloaded
}

TEST(CacheManyTest, StoreErrorDegradesToTheLoader) {
  Env env;
  SCache cache(env.store, env.options());
  env.store->fail_next(1, absl::UnavailableError("store down"));
  Batch load(echo);
  std::vector<std::string> keys{"a", "b"};
  auto got = cache.get_many(std::span<const std::string>(keys), load);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->size(), 2u);
  EXPECT_EQ(cache.stats().store_errors, 1u);
}

// get_many_aligned answers slot by slot: hits, a dirty key and a pending
// erase (write-back), repeats (of a hit, of a dirty key and of a miss), a
// load, and a key the loader does not return. The store and the loader see
// each key once, as with get_many.
TEST(CacheManyTest, AlignedSlotsFollowTheKeys) {
  Env env;
  testing::FakeDb<std::string, std::string> db;
  auto store = std::make_shared<BatchRecordingStore>(env.clock);
  SCache cache(store, write_back_options(env, db));
  for (const auto& k : key_range(0, 4)) ASSERT_TRUE(cache.put(k, "v:" + k).ok());
  ASSERT_TRUE(cache.flush().ok());
  ASSERT_TRUE(cache.put("k2", "pending").ok());  // dirty
  ASSERT_TRUE(cache.erase("k3").ok());           // dirty: a pending erase
  Batch load([](std::span<const std::string> keys) -> absl::StatusOr<Map> {
    Map m;
    for (const auto& k : keys) {
      if (k != "gone") m[k] = "v:" + k;
    }
    return m;
  });
  const std::vector<std::string> keys{"k0", "k8", "k2", "k0", "gone", "k3", "k1", "k8", "k2"};
  GetManyAlignedResult<std::string> got = cache.get_many_aligned(keys, load);
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got.size(), keys.size());
  const std::vector<std::optional<std::string>> want{
      "v:k0", "v:k8", "pending", "v:k0", std::nullopt, std::nullopt, "v:k1", "v:k8", "pending"};
  EXPECT_EQ(got.values(), want);
  EXPECT_TRUE(got.errors().empty());
  ASSERT_GE(store->batches().size(), 1u);
  EXPECT_EQ(store->batches()[0], (std::vector<std::string>{"k0", "k8", "gone", "k1"}));
  ASSERT_EQ(load.calls(), 1);
  EXPECT_THAT(load.batches()[0], UnorderedElementsAre("k8", "gone"));
  // The same counts as get_many: k0, k1 and k2's pending value are hits; k8,
  // gone and k3's pending erase misses, once each.
  EXPECT_EQ(cache.stats().hits, 3u);
  EXPECT_EQ(cache.stats().misses, 3u);
}

// A batch of hits without repeats is read from the caller's keys in place,
// and every slot is filled.
TEST(CacheManyTest, AlignedHitsAreReadFromTheCallersKeys) {
  WarmBatch w(300);  // past the on-stack repeat table
  auto got = w.cache.get_many_aligned(w.keys, w.load);
  ASSERT_TRUE(got.ok());
  ASSERT_EQ(got.size(), w.keys.size());
  for (std::size_t i = 0; i < w.keys.size(); ++i) EXPECT_EQ(got[i], "v:" + w.keys[i]) << i;
  w.expect_read_in_place();
}

// A failed load: each slot of a key without a stale value reports the
// error (a repeated key in both its slots, in index order); a key with a
// stale value gets it; a hit keeps its value.
TEST(CacheManyTest, AlignedErrorsNameTheFailedSlots) {
  Env env;
  auto o = env.options();
  o.stale_if_error = seconds(60);
  SCache cache(env.store, o);
  ASSERT_TRUE(cache.put("old", "v:old").ok());
  env.clock->advance(o.ttl + seconds(1));  // "old" is past its ttl, within stale_if_error
  ASSERT_TRUE(cache.put("hit", "v:hit").ok());
  Batch load([](std::span<const std::string>) -> absl::StatusOr<Map> {
    return absl::UnavailableError("db down");
  });
  const std::vector<std::string> keys{"a", "hit", "old", "b", "a"};
  auto got = cache.get_many_aligned(keys, load);
  EXPECT_EQ(got.status().code(), absl::StatusCode::kUnavailable);
  const std::vector<std::optional<std::string>> want{std::nullopt, "v:hit", "v:old", std::nullopt,
                                                     std::nullopt};
  EXPECT_EQ(got.values(), want);
  std::vector<std::size_t> failed;
  for (const auto& e : got.errors()) {
    failed.push_back(e.index);
    EXPECT_EQ(e.status.code(), absl::StatusCode::kUnavailable);
  }
  EXPECT_EQ(failed, (std::vector<std::size_t>{0, 3, 4}));
}

// Bound: through the batch loader, through the per-key loader (one call per
// distinct key), and without either (every slot fails).
TEST(CacheManyTest, AlignedBoundUsesTheOptionsLoaders) {
  Env env;
  {
    auto o = env.options();
    o.batch_loader = echo;
    SCache cache(env.store, o);
    auto got = cache.get_many_aligned({"x", "y", "x"});
    ASSERT_TRUE(got.ok());
    EXPECT_EQ(got.values(), (std::vector<std::optional<std::string>>{"v:x", "v:y", "v:x"}));
  }
  {
    std::atomic<int> calls{0};
    auto o = env.options();
    o.loader = [&calls](const std::string& k) -> absl::StatusOr<std::string> {
      calls.fetch_add(1);
      if (k == "none") return absl::NotFoundError("no such row");
      if (k == "bad") return absl::InternalError("broken row");
      return "l:" + k;
    };
    SCache cache(env.store, o);
    const std::vector<std::string> keys{"p", "none", "bad", "p", "q"};
    auto got = cache.get_many_aligned(keys);
    EXPECT_EQ(got.status().code(), absl::StatusCode::kInternal);
    EXPECT_EQ(got.values(), (std::vector<std::optional<std::string>>{"l:p", std::nullopt,
                                                                     std::nullopt, "l:p", "l:q"}));
    ASSERT_EQ(got.errors().size(), 1u);
    EXPECT_EQ(got.errors()[0].index, 2u);
    EXPECT_EQ(calls.load(), 4);
  }
  {
    SCache cache(env.store, env.options());
    auto got = cache.get_many_aligned({"x", "y"});
    EXPECT_EQ(got.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_EQ(got.values(), (std::vector<std::optional<std::string>>(2)));
    ASSERT_EQ(got.errors().size(), 2u);
    EXPECT_EQ(got.errors()[1].index, 1u);
  }
}

TEST(CacheManyTest, EmptyInputCallsNothing) {
  Env env;
  SCache cache(env.store, env.options());
  Batch load(echo);
  auto got = cache.get_many(std::span<const std::string>(), load);
  ASSERT_TRUE(got.ok());
  EXPECT_TRUE(got->empty());
  EXPECT_EQ(load.calls(), 0);
  EXPECT_EQ(env.store->batch_gets.load(), 0);
}

}  // namespace
}  // namespace larder
