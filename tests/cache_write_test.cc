// SPDX-License-Identifier: Apache-2.0
//
// Cache<K, V> write path: write-back wired through Cache (coalescing, per-key
// order, failures and recovery, backpressure, flush, destructor drain, dirty
// keys under eviction pressure, read-your-writes, erase ordering, the
// journal across Cache instances) and write-through ordering. Time is a
// ManualClock; the flusher is driven with WriteBack::poll() through
// internal::CacheTestPeer. No sleeps wait for time.
#include <stdlib.h>

#include <atomic>
#include <barrier>
#include <chrono>
#include <filesystem>
#include <latch>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "larder/cache.h"
#include "larder/local_store.h"
#include "tests/testing/cache_env.h"
#include "tests/testing/fake_db.h"

namespace larder::internal {
struct CacheTestPeer {
  template <class K, class V>
  static void poll(Cache<K, V>& c) {
    c.core_->write_back_queue()->poll();
  }
  template <class K, class V>
  static WriteBackStats wb_stats(Cache<K, V>& c) {
    return c.core_->write_back_queue()->stats();
  }
};
}  // namespace larder::internal

namespace larder {
namespace {

using std::chrono::milliseconds;
using ::testing::HasSubstr;
using Peer = internal::CacheTestPeer;
using SCache = Cache<std::string, std::string>;
using Env = testing::CacheEnv<>;

// A system of record: rows, plus the log of every Writer call (for order).
using Db = testing::FakeDb<std::string, std::string>;

CacheOptions<std::string, std::string> write_back(const Env& env, Db& db) {
  auto o = env.options();
  o.write_mode = WriteMode::kWriteBack;
  o.writer = db.writer();
  o.write_back.delay = milliseconds(100);
  return o;
}

// A loader that must not be called.
auto no_loader() {
  return [](const std::string& k) -> absl::StatusOr<std::string> {
    ADD_FAILURE() << "loader called for " << k;
    return absl::InternalError("unexpected load");
  };
}

// ---- options ----

TEST(CacheWriteTest, WriteBackOptionsAreValidated) {
  Env env;
  Db db;
  auto expect_throw = [&](auto mutate, const std::string& needle) {
    auto o = write_back(env, db);
    mutate(o);
    try {
      SCache c(env.store, o);
      ADD_FAILURE() << "no exception for " << needle;
    } catch (const std::invalid_argument& e) {
      EXPECT_THAT(std::string(e.what()), HasSubstr(needle));
    }
  };
  using O = CacheOptions<std::string, std::string>;
  expect_throw([](O& o) { o.writer.write = nullptr; },
               "write_mode = kWriteBack needs writer.write");
  expect_throw([](O& o) { o.write_back.batch = 0; }, "write_back.batch");
  expect_throw([](O& o) { o.write_back.max_dirty = 0; }, "write_back.max_dirty");
  expect_throw([](O& o) { o.write_back.delay = milliseconds(-1); }, "write_back.delay");
  expect_throw([](O& o) { o.write_back.wait = milliseconds(-1); }, "write_back.wait");
  expect_throw([](O& o) { o.write_back.retry_base = milliseconds(0); }, "write_back.retry_base");
  expect_throw([](O& o) { o.write_back.retry_max = milliseconds(1); }, "write_back.retry_max");
  expect_throw(
      [](O& o) {
        o.write_back.journal = "/tmp/x";
        o.write_back.fsync = FsyncPolicy::kEveryInterval;
        o.write_back.fsync_interval = milliseconds(0);
      },
      "write_back.fsync_interval");
  expect_throw(
      [](O& o) {
        o.write_mode = WriteMode::kWriteThrough;
        o.write_back.journal = "/tmp/x";
      },
      "write_back.journal is set but write_mode is not kWriteBack");

  struct NoCodec {  // not trivially copyable: no built-in larder::Codec
    int x = 0;
    std::vector<int> more{};
  };
  auto clock = std::make_shared<ManualClock>();
  CacheOptions<std::string, NoCodec> o;
  o.clock = clock;
  o.write_mode = WriteMode::kWriteBack;
  o.writer.write = [](std::span<const std::pair<std::string, NoCodec>>) {
    return absl::OkStatus();
  };
  o.write_back.journal = "/tmp/never-created";
  try {
    Cache<std::string, NoCodec> c(std::make_shared<testing::MapStore<std::string, NoCodec>>(clock),
                                  o);
    ADD_FAILURE() << "no exception for a journal without a codec";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(std::string(e.what()), HasSubstr("write_back.journal"));
    EXPECT_THAT(std::string(e.what()), HasSubstr("Codec"));
  }
  // Without a journal, a type without a codec is fine.
  o.write_back.journal.clear();
  Cache<std::string, NoCodec> c(std::make_shared<testing::MapStore<std::string, NoCodec>>(clock),
                                o);
  EXPECT_TRUE(c.put("k", NoCodec{1, {}}).ok());
  EXPECT_EQ(c.get_if_present("k")->x, 1);
}

// ---- write-back ----

TEST(CacheWriteTest, WriteBackCoalescesAndKeepsPerKeyOrder) {
  Env env;
  Db db;
  SCache cache(env.store, write_back(env, db));
  for (int i = 0; i < 1000; ++i) {
    ASSERT_TRUE(cache.put("k" + std::to_string(i % 10), std::to_string(i)).ok());
    if (i % 100 == 99) {  // let the flusher run now and then, mid-stream
      env.clock->advance(milliseconds(100));
      Peer::poll(cache);
    }
  }
  ASSERT_TRUE(cache.flush().ok());
  EXPECT_EQ(cache.stats().dirty, 0u);
  // The latest value of every key, in the system of record and the cache.
  for (int k = 0; k < 10; ++k) {
    const std::string key = "k" + std::to_string(k);
    EXPECT_EQ(db.row(key), std::to_string(990 + k));
    EXPECT_EQ(cache.get_if_present(key), std::to_string(990 + k));
  }
  // Far fewer writes than puts, each key's writes in put order.
  const std::vector<Db::Op> log = db.log();
  EXPECT_LE(log.size(), 110u);
  EXPECT_GE(log.size(), 10u);
  std::map<std::string, int> last;
  for (const Db::Op& op : log) {
    const int v = std::stoi(*op.value);
    EXPECT_GT(v, last.count(op.key) ? last[op.key] : -1) << op.key;
    last[op.key] = v;
  }
  const CacheStats st = cache.stats();
  EXPECT_EQ(st.writes, log.size());
  EXPECT_GE(st.write_coalesced, 1000u - log.size() - 10u);
  EXPECT_GE(st.flushes, 1u);
}

TEST(CacheWriteTest, WriteBackWaitsForTheDelay) {
  Env env;
  Db db;
  SCache cache(env.store, write_back(env, db));
  ASSERT_TRUE(cache.put("k", "v").ok());
  EXPECT_EQ(cache.stats().dirty, 1u);
  env.clock->advance(milliseconds(99));
  Peer::poll(cache);
  EXPECT_EQ((db.write_calls() + db.erase_calls()), 0);
  env.clock->advance(milliseconds(1));
  Peer::poll(cache);
  EXPECT_EQ(db.row("k"), "v");
  EXPECT_EQ(cache.stats().dirty, 0u);
  EXPECT_EQ(cache.stats().writes, 1u);
}

TEST(CacheWriteTest, WriterFailuresAreRetriedReportedAndRecover) {
  Env env;
  Db db;
  db.fail_next(2);
  internal::Mutex mu;
  std::vector<std::string> reported;
  auto o = write_back(env, db);
  o.write_back.on_error = [&](std::span<const std::string> keys, const absl::Status& s) {
    internal::MutexLock l(&mu);
    EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
    reported.insert(reported.end(), keys.begin(), keys.end());
  };
  SCache cache(env.store, o);
  ASSERT_TRUE(cache.put("a", "1").ok());
  ASSERT_TRUE(cache.put("b", "2").ok());
  env.clock->advance(milliseconds(100));
  Peer::poll(cache);  // first attempt fails
  EXPECT_EQ(cache.stats().write_failures, 1u);
  EXPECT_EQ(cache.stats().dirty, 2u);
  EXPECT_EQ(cache.get_or_load("a", no_loader()).value(), "1");  // still readable
  // A failed key is not retried before its backoff (>= retry_base/2).
  env.clock->advance(milliseconds(10));
  Peer::poll(cache);
  EXPECT_EQ(cache.stats().write_failures, 1u);
  env.clock->advance(milliseconds(100));  // past the first backoff: second attempt fails too
  Peer::poll(cache);
  EXPECT_EQ(cache.stats().write_failures, 2u);
  env.clock->advance(milliseconds(200));  // past the second (doubled) backoff
  Peer::poll(cache);
  EXPECT_EQ(cache.stats().dirty, 0u);
  EXPECT_EQ(db.row("a"), "1");
  EXPECT_EQ(db.row("b"), "2");
  {
    internal::MutexLock l(&mu);
    EXPECT_EQ(reported.size(), 4u);  // both keys, twice
  }
  // flush() reports the error of its attempt, and later succeeds.
  db.fail_next(1);
  ASSERT_TRUE(cache.put("a", "3").ok());
  EXPECT_EQ(cache.flush().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(cache.get_if_present("a"), "3");
  EXPECT_TRUE(cache.flush().ok());
  EXPECT_EQ(db.row("a"), "3");
}

TEST(CacheWriteTest, BackpressureRefusesAndLeavesTheCacheUnchanged) {
  Env env;
  Db db;
  db.fail_next(1'000'000);  // the system of record is down
  auto o = write_back(env, db);
  o.write_back.max_dirty = 2;
  o.write_back.wait = milliseconds(0);
  SCache cache(env.store, o);
  ASSERT_TRUE(cache.put("a", "1").ok());
  ASSERT_TRUE(cache.put("b", "1").ok());
  absl::Status s = cache.put("c", "1");
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(cache.get_if_present("c"), std::nullopt);
  EXPECT_FALSE(env.store->raw("c").has_value());
  EXPECT_EQ(cache.stats().write_rejected, 1u);
  // Keys already dirty may still change.
  EXPECT_TRUE(cache.put("a", "2").ok());
  EXPECT_EQ(cache.get_if_present("a"), "2");
  // Once the system of record is back, room frees up.
  db.fail_next(0);
  ASSERT_TRUE(cache.flush().ok());
  EXPECT_TRUE(cache.put("c", "1").ok());
  ASSERT_TRUE(cache.flush().ok());
  EXPECT_EQ(db.row("a"), "2");
  EXPECT_EQ(db.row("c"), "1");
}

TEST(CacheWriteTest, BackpressureWaitsForRoom) {
  Env env;
  Db db;
  auto o = write_back(env, db);
  o.write_back.max_dirty = 1;
  o.write_back.wait = milliseconds(60'000);  // real time; the flusher frees room first
  SCache cache(env.store, o);
  ASSERT_TRUE(cache.put("a", "1").ok());
  // The flusher waives the delay for a waiting put, so this returns once "a"
  // is written, without the clock moving.
  ASSERT_TRUE(cache.put("b", "1").ok());
  EXPECT_EQ(db.row("a"), "1");
  EXPECT_EQ(cache.stats().write_rejected, 0u);
}

TEST(CacheWriteTest, FlushCoversEveryPutAcknowledgedBeforeIt) {
  Env env;
  Db db;
  SCache cache(env.store, write_back(env, db));
  constexpr int kThreads = 3, kPuts = 300;
  std::atomic<int> acked[kThreads];
  for (auto& a : acked) a.store(-1);
  std::atomic<int> done{0};
  std::latch started(kThreads + 1);
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t) {
    ts.emplace_back([&, t] {
      started.arrive_and_wait();
      for (int i = 0; i < kPuts; ++i) {
        ASSERT_TRUE(cache.put("t" + std::to_string(t), std::to_string(i)).ok());
        acked[t].store(i);
      }
      done.fetch_add(1);
    });
  }
  started.arrive_and_wait();
  int rounds = 0;
  while (done.load() < kThreads || rounds < 3) {
    ++rounds;
    int before[kThreads];
    for (int t = 0; t < kThreads; ++t) before[t] = acked[t].load();
    ASSERT_TRUE(cache.flush().ok());
    for (int t = 0; t < kThreads; ++t) {
      if (before[t] < 0) continue;
      std::optional<std::string> row = db.row("t" + std::to_string(t));
      ASSERT_TRUE(row.has_value());
      EXPECT_GE(std::stoi(*row), before[t]);
    }
  }
  for (auto& t : ts) t.join();
  ASSERT_TRUE(cache.flush().ok());
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(db.row("t" + std::to_string(t)), std::to_string(kPuts - 1));
  }
}

TEST(CacheWriteTest, DestructorDrains) {
  Env env;
  Db db;
  {
    SCache cache(env.store, write_back(env, db));
    for (int i = 0; i < 50; ++i) ASSERT_TRUE(cache.put("k" + std::to_string(i), "v").ok());
    EXPECT_EQ((db.write_calls() + db.erase_calls()), 0);
  }
  EXPECT_EQ(db.rows().size(), 50u);
}

TEST(CacheWriteTest, DestructorReportsWhatItCouldNotWrite) {
  Env env;
  Db db;
  db.fail_next(1'000'000);
  std::vector<std::string> aborted;
  {
    auto o = write_back(env, db);
    o.write_back.retry_base = milliseconds(1);  // the destructor pauses this long (real time)
    o.write_back.retry_max = milliseconds(2);
    o.write_back.on_error = [&](std::span<const std::string> keys, const absl::Status& s) {
      if (s.code() == absl::StatusCode::kAborted) aborted.assign(keys.begin(), keys.end());
    };
    SCache cache(env.store, o);
    ASSERT_TRUE(cache.put("k", "v").ok());
  }
  EXPECT_EQ(aborted, std::vector<std::string>{"k"});
}

TEST(CacheWriteTest, DirtyKeysAreNeverLostToEviction) {
  auto clock = std::make_shared<ManualClock>(from_unix_millis(1'700'000'000'000));
  auto store = std::make_shared<LocalStore<std::string, std::string>>(
      LocalStoreOptions{.max_entries = 16, .max_weight = 0, .shards = 1, .clock = clock});
  auto executor = std::make_shared<testing::ManualExecutor>();
  Db db;
  CacheOptions<std::string, std::string> o;
  o.ttl = std::chrono::seconds(10);
  o.clock = clock;
  o.executor = executor;
  o.write_mode = WriteMode::kWriteBack;
  o.writer = db.writer();
  o.write_back.max_dirty = 10'000;
  {
    SCache cache(store, o);
    constexpr int kKeys = 1000;
    for (int i = 0; i < kKeys; ++i) {
      ASSERT_TRUE(cache.put("k" + std::to_string(i), "v" + std::to_string(i)).ok());
    }
    EXPECT_LE(store->size(), 16u);
    EXPECT_GT(cache.stats().evictions, 0u);
    EXPECT_EQ(cache.stats().dirty, static_cast<std::uint64_t>(kKeys));
    for (int i = 0; i < kKeys; ++i) {
      const std::string k = "k" + std::to_string(i);
      ASSERT_EQ(cache.get_if_present(k), "v" + std::to_string(i)) << k;
      ASSERT_EQ(cache.get_or_load(k, no_loader()).value(), "v" + std::to_string(i)) << k;
    }
    std::vector<std::string> keys;
    for (int i = 0; i < kKeys; i += 7) keys.push_back("k" + std::to_string(i));
    auto many = cache.get_many(
        std::span<const std::string>(keys),
        [](std::span<const std::string> missing) -> absl::flat_hash_map<std::string, std::string> {
          ADD_FAILURE() << "batch loader called for " << missing.size();
          return {};
        });
    ASSERT_TRUE(many.ok());
    EXPECT_EQ(many->size(), keys.size());
    ASSERT_TRUE(cache.flush().ok());
    ASSERT_EQ(db.rows().size(), static_cast<std::size_t>(kKeys));
    for (int i = 0; i < kKeys; ++i)
      EXPECT_EQ(db.row("k" + std::to_string(i)), "v" + std::to_string(i));
  }
  executor->run_all();
}

TEST(CacheWriteTest, ReadsSeeTheirOwnWrites) {
  Env env;
  Db db;
  db.set("k", "old");
  SCache cache(env.store, write_back(env, db));
  auto from_db = [&](const std::string& k) -> absl::StatusOr<std::string> {
    if (auto r = db.row(k)) return *r;
    return absl::NotFoundError(k);
  };
  EXPECT_EQ(cache.get_or_load("k", from_db).value(), "old");
  ASSERT_TRUE(cache.put("k", "new").ok());
  EXPECT_EQ(cache.get_or_load("k", from_db).value(), "new");
  EXPECT_EQ(cache.get_if_present("k"), "new");
  // invalidate drops the cached copy only: the pending write stays, and reads
  // answer it instead of loading the older row.
  ASSERT_TRUE(cache.invalidate("k").ok());
  EXPECT_FALSE(env.store->raw("k").has_value());
  EXPECT_EQ(cache.get_or_load("k", from_db).value(), "new");
  ASSERT_TRUE(cache.invalidate_all().ok());
  EXPECT_EQ(cache.get_if_present("k"), "new");
  ASSERT_TRUE(cache.flush().ok());
  EXPECT_EQ(db.row("k"), "new");
  // Written and invalidated: now a read loads (the row is the new value).
  ASSERT_TRUE(cache.invalidate("k").ok());
  EXPECT_EQ(cache.get_if_present("k"), std::nullopt);
  EXPECT_EQ(cache.get_or_load("k", from_db).value(), "new");
}

TEST(CacheWriteTest, EraseIsOrderedAfterEarlierPuts) {
  Env env;
  Db db;
  SCache cache(env.store, write_back(env, db));
  ASSERT_TRUE(cache.put("k", "v1").ok());
  ASSERT_TRUE(cache.flush().ok());
  EXPECT_EQ(db.row("k"), "v1");
  ASSERT_TRUE(cache.put("k", "v2").ok());
  ASSERT_TRUE(cache.erase("k").ok());
  // A pending erase is a miss, and the loader (which would read v1) is not asked.
  EXPECT_EQ(cache.get_if_present("k"), std::nullopt);
  EXPECT_EQ(cache.get_or_load("k", no_loader()).status().code(), absl::StatusCode::kNotFound);
  std::vector<std::string> keys = {"k"};
  auto many = cache.get_many(
      std::span<const std::string>(keys),
      [](std::span<const std::string>) -> absl::flat_hash_map<std::string, std::string> {
        ADD_FAILURE() << "batch loader called";
        return {};
      });
  ASSERT_TRUE(many.ok());
  EXPECT_TRUE(many->empty());
  ASSERT_TRUE(cache.flush().ok());
  EXPECT_EQ(db.row("k"), std::nullopt);
  // A put after the erase wins over it.
  ASSERT_TRUE(cache.erase("j").ok());
  ASSERT_TRUE(cache.put("j", "after").ok());
  EXPECT_EQ(cache.get_if_present("j"), "after");
  ASSERT_TRUE(cache.flush().ok());
  EXPECT_EQ(db.row("j"), "after");
  // The system of record saw k's put before its erase, never v2 after it.
  std::vector<std::optional<std::string>> k_ops;
  for (const Db::Op& op : db.log()) {
    if (op.key == "k") k_ops.push_back(op.value);
  }
  ASSERT_FALSE(k_ops.empty());
  EXPECT_EQ(k_ops.front(), "v1");
  EXPECT_EQ(k_ops.back(), std::nullopt);
}

TEST(CacheWriteTest, EraseWithoutWriterEraseOnlyInvalidates) {
  Env env;
  Db db;
  auto o = write_back(env, db);
  o.writer.erase = nullptr;
  SCache cache(env.store, o);
  ASSERT_TRUE(cache.put("k", "v").ok());
  ASSERT_TRUE(cache.erase("k").ok());
  EXPECT_EQ(cache.get_if_present("k"), "v");  // still pending: it will be written
  ASSERT_TRUE(cache.flush().ok());
  EXPECT_EQ(db.row("k"), "v");
}

TEST(CacheWriteTest, JournalIsReplayedByTheNextCache) {
  std::string tmpl = (std::filesystem::temp_directory_path() / "larder_cwt_XXXXXX").string();
  const std::string dir = ::mkdtemp(tmpl.data());
  const std::string journal = dir + "/wb";
  Env env;
  Db db;
  db.fail_next(1'000'000);
  std::atomic<int> aborted{0};
  {
    auto o = write_back(env, db);
    o.write_back.journal = journal;
    o.write_back.fsync = FsyncPolicy::kNever;
    o.write_back.retry_base = milliseconds(1);
    o.write_back.retry_max = milliseconds(1);
    o.write_back.on_error = [&](std::span<const std::string> keys, const absl::Status& s) {
      if (s.code() == absl::StatusCode::kAborted) aborted += static_cast<int>(keys.size());
    };
    SCache cache(env.store, o);
    ASSERT_TRUE(cache.put("a", "1").ok());
    ASSERT_TRUE(cache.put("b", "2").ok());
    ASSERT_TRUE(cache.put("a", "3").ok());
  }  // the Writer never succeeded: the keys stay in the journal
  EXPECT_EQ(aborted.load(), 2);
  EXPECT_EQ(db.row("a"), std::nullopt);
  Env env2;
  auto o = write_back(env2, db);
  o.write_back.journal = journal;
  SCache cache(env2.store, o);  // the Writer still fails: replayed keys stay dirty
  // a=1 is not replayed: a=3 superseded it (the journal's checkpoint says so).
  EXPECT_EQ(cache.stats().journal_replayed, 2u);
  EXPECT_EQ(cache.get_if_present("a"), "3");  // replayed keys are readable at once
  EXPECT_EQ(cache.get_if_present("b"), "2");
  {
    // While this cache owns the journal, a second one on the path is refused.
    Env env3;
    auto o3 = write_back(env3, db);
    o3.write_back.journal = journal;
    EXPECT_THROW(SCache(env3.store, o3), std::runtime_error);
  }
  db.fail_next(0);
  ASSERT_TRUE(cache.flush().ok());
  EXPECT_EQ(db.row("a"), "3");
  EXPECT_EQ(db.row("b"), "2");
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

TEST(CacheWriteTest, WriteBackStressKeepsCacheAndSystemOfRecordInAgreement) {
  auto store = std::make_shared<LocalStore<std::string, std::string>>(
      LocalStoreOptions{.max_entries = 8, .max_weight = 0, .shards = 1, .clock = nullptr});
  Db db;
  CacheOptions<std::string, std::string> o;
  o.write_mode = WriteMode::kWriteBack;
  o.writer = db.writer();
  o.write_back.delay = milliseconds(1);
  o.write_back.batch = 4;
  o.executor = std::make_shared<testing::ManualExecutor>();
  constexpr int kThreads = 4, kOps = 1500, kKeys = 20;
  {
    SCache cache(store, o);
    std::vector<std::thread> ts;
    for (int t = 0; t < kThreads; ++t) {
      ts.emplace_back([&, t] {
        std::mt19937 rng(static_cast<unsigned>(t) * 7919u + 1u);
        for (int i = 0; i < kOps; ++i) {
          const std::string k = "k" + std::to_string(rng() % kKeys);
          switch (rng() % 10) {
            case 0:
              ASSERT_TRUE(cache.erase(k).ok());
              break;
            case 1:
              if (i % 50 == 0) {
                ASSERT_TRUE(cache.flush().ok());
              }
              break;
            case 2:
              (void)cache.invalidate(k);
              break;
            case 3:
            case 4:
            case 5:
              (void)cache.get_if_present(k);
              break;
            default:
              ASSERT_TRUE(cache.put(k, std::to_string(t) + ":" + std::to_string(i)).ok());
          }
        }
      });
    }
    for (auto& th : ts) th.join();
    ASSERT_TRUE(cache.flush().ok());
    EXPECT_EQ(cache.stats().dirty, 0u);
    // After the dust settles, whatever the cache holds is what the system of
    // record holds (it may hold less: evicted, invalidated).
    for (int k = 0; k < kKeys; ++k) {
      const std::string key = "k" + std::to_string(k);
      std::optional<std::string> cached = cache.get_if_present(key);
      if (cached) {
        EXPECT_EQ(db.row(key), cached) << key;
      }
    }
  }
}

// ---- write-through ----

TEST(CacheWriteTest, WriteThroughFailureLeavesTheCacheUnchanged) {
  Env env;
  Db db;
  auto o = env.options();
  o.write_mode = WriteMode::kWriteThrough;
  o.writer = db.writer();
  SCache cache(env.store, o);
  ASSERT_TRUE(cache.put("k", "v1").ok());
  db.fail_next(1);
  EXPECT_EQ(cache.put("k", "v2").code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(cache.get_or_load("k", no_loader()).value(), "v1");
  EXPECT_EQ(db.row("k"), "v1");
  db.fail_next(1);
  EXPECT_EQ(cache.put("new", "x").code(), absl::StatusCode::kUnavailable);
  EXPECT_FALSE(env.store->raw("new").has_value());
  const CacheStats st = cache.stats();
  EXPECT_EQ(st.writes, 1u);
  EXPECT_EQ(st.write_failures, 2u);
  EXPECT_EQ(st.dirty, 0u);
}

TEST(CacheWriteTest, WriteThroughSameKeyPutsAreSerialisedAndAgree) {
  Env env;
  // A Writer that notices two calls for one key at once, and is slow enough
  // (it yields) that unserialised puts would overlap.
  internal::Mutex mu;
  std::map<std::string, std::string> rows;
  std::atomic<int> inside{0}, overlaps{0};
  auto o = env.options();
  o.write_mode = WriteMode::kWriteThrough;
  o.writer.write = [&](std::span<const std::pair<std::string, std::string>> batch) {
    if (inside.fetch_add(1) != 0) overlaps.fetch_add(1);
    for (int i = 0; i < 20; ++i) std::this_thread::yield();
    {
      internal::MutexLock l(&mu);
      for (const auto& [k, v] : batch) rows[k] = v;
    }
    for (int i = 0; i < 20; ++i) std::this_thread::yield();
    inside.fetch_sub(1);
    return absl::OkStatus();
  };
  SCache cache(env.store, o);
  constexpr int kThreads = 4, kPuts = 200;
  std::barrier sync(kThreads);
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t) {
    ts.emplace_back([&, t] {
      for (int i = 0; i < kPuts; ++i) {
        if (i % 20 == 0) sync.arrive_and_wait();
        ASSERT_TRUE(cache.put("k", std::to_string(t) + ":" + std::to_string(i)).ok());
      }
    });
  }
  for (auto& th : ts) th.join();
  EXPECT_EQ(overlaps.load(), 0);
  internal::MutexLock l(&mu);
  EXPECT_EQ(cache.get_if_present("k"), rows["k"]);
  EXPECT_EQ(cache.stats().writes, static_cast<std::uint64_t>(kThreads * kPuts));
}

// A Writer that writes back into the cache for the key it is writing gets an
// error for that inner call instead of deadlocking on the key's turn; writes
// of other keys from inside the Writer go through.
TEST(CacheWriteTest, ReentrantWriteOfTheSameKeyFailsInsteadOfDeadlocking) {
  Env env;
  SCache* self = nullptr;
  absl::Status inner_same, inner_erase, inner_other;
  auto o = env.options();
  o.write_mode = WriteMode::kWriteThrough;
  o.writer.write = [&](std::span<const std::pair<std::string, std::string>> batch) {
    if (batch[0].first == "k") {
      inner_same = self->put("k", "inner");
      inner_erase = self->erase("k");
      inner_other = self->put("other", "x");
    }
    return absl::OkStatus();
  };
  o.writer.erase = [](std::span<const std::string>) { return absl::OkStatus(); };
  SCache cache(env.store, o);
  self = &cache;
  ASSERT_TRUE(cache.put("k", "outer").ok());
  EXPECT_EQ(inner_same.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(inner_erase.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(inner_other.ok());
  EXPECT_EQ(cache.get_if_present("k"), "outer");
  EXPECT_EQ(cache.get_if_present("other"), "x");
  // The turn was released: later writes of k are not refused.
  ASSERT_TRUE(cache.put("k", "again").ok());
  EXPECT_EQ(cache.get_if_present("k"), "again");
}

TEST(CacheWriteTest, WriteThroughDifferentKeysDoNotWaitForEachOther) {
  Env env;
  std::latch a_inside(1), release_a(1);
  auto o = env.options();
  o.write_mode = WriteMode::kWriteThrough;
  o.writer.write = [&](std::span<const std::pair<std::string, std::string>> batch) {
    if (batch[0].first == "a") {
      a_inside.count_down();
      release_a.wait();
    }
    return absl::OkStatus();
  };
  SCache cache(env.store, o);
  std::thread t([&] { ASSERT_TRUE(cache.put("a", "1").ok()); });
  a_inside.wait();
  ASSERT_TRUE(cache.put("b", "1").ok());  // would hang if "b" waited for "a"
  EXPECT_EQ(cache.get_if_present("a"), std::nullopt);
  release_a.count_down();
  t.join();
  EXPECT_EQ(cache.get_if_present("a"), "1");
}

}  // namespace
}  // namespace larder
