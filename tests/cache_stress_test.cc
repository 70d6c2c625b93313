// SPDX-License-Identifier: Apache-2.0
//
// Cache<K, V> under concurrent get_or_load, get_many, put, invalidate,
// invalidate_all and background refreshes over a few keys, with time moving.
// Meant to run under ThreadSanitizer and AddressSanitizer; iteration counts
// are modest for that reason.
#include <atomic>
#include <barrier>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "larder/cache.h"
#include "tests/testing/map_store.h"

namespace larder {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// Values are "<key>#<version>"; the "database" hands out increasing versions.
struct Db {
  static constexpr int kKeys = 6;
  std::atomic<int> version[kKeys] = {};
  std::atomic<int> loads{0}, failures{0};

  static int index(const std::string& k) { return k[1] - '0'; }
  absl::StatusOr<std::string> load(const std::string& k) {
    loads.fetch_add(1);
    int v = version[index(k)].load();
    if (v % 7 == 3) {
      failures.fetch_add(1);
      return absl::UnavailableError("flaky");
    }
    if (v % 11 == 5) throw std::runtime_error("thrown");
    return k + "#" + std::to_string(v);
  }
};

bool well_formed(const std::string& key, const std::string& value) {
  return value.rfind(key + "#", 0) == 0;
}

// load_timeout > 0 also sends loads with a stale value (get_or_load and
// get_many) through the executor, with callers that may stop waiting.
void run_mixed_operations(std::chrono::milliseconds load_timeout) {
  auto clock = std::make_shared<ManualClock>(from_unix_millis(1'700'000'000'000));
  auto store = std::make_shared<testing::MapStore<std::string, std::string>>(clock);
  auto pool =
      std::make_shared<ThreadPoolExecutor>(ThreadPoolOptions{.threads = 2, .queue_capacity = 8});
  Db db;
  CacheOptions<std::string, std::string> o;
  o.ttl = milliseconds(100);
  o.stale_while_revalidate = milliseconds(100);
  o.stale_if_error = milliseconds(300);
  o.ttl_jitter = 0.1;
  o.refresh_ahead = 0.5;
  o.negative.ttl = milliseconds(50);
  o.error_backoff = milliseconds(10);
  o.load_timeout = load_timeout;
  o.clock = clock;
  o.executor = pool;
  std::atomic<int> refresh_errors{0};
  o.on_refresh_error = [&](const std::string&, const absl::Status&) {
    refresh_errors.fetch_add(1);
  };

  std::atomic<int> bad{0};
  {
    Cache<std::string, std::string> cache(store, o);
    constexpr int kThreads = 4;
    constexpr int kOps = 2500;
    std::barrier start(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        std::mt19937 rng(1234 + t);
        auto loader = [&db](const std::string& k) { return db.load(k); };
        auto batch = [&db](std::span<const std::string> keys) {
          absl::flat_hash_map<std::string, std::string> m;
          for (const auto& k : keys) {
            absl::StatusOr<std::string> v = db.load(k);
            if (v.ok()) m[k] = *v;
          }
          return m;
        };
        start.arrive_and_wait();
        for (int i = 0; i < kOps; ++i) {
          const int op = static_cast<int>(rng() % 100);
          const std::string key = "k" + std::to_string(rng() % Db::kKeys);
          if (op < 55) {
            absl::StatusOr<std::string> v = cache.get_or_load(key, loader);
            if (v.ok() && !well_formed(key, *v)) bad.fetch_add(1);
          } else if (op < 70) {
            std::vector<std::string> keys{key, "k" + std::to_string(rng() % Db::kKeys),
                                          "k" + std::to_string(rng() % Db::kKeys)};
            if (op % 2 == 0) {
              auto m = cache.get_many(std::span<const std::string>(keys), batch);
              if (m.ok()) {
                for (const auto& [k, v] : *m) {
                  if (!well_formed(k, v)) bad.fetch_add(1);
                }
              }
            } else {
              auto a = cache.get_many_aligned(keys, batch);
              if (a.size() != keys.size()) bad.fetch_add(1);
              for (std::size_t j = 0; j < a.size() && j < keys.size(); ++j) {
                if (a[j] && !well_formed(keys[j], *a[j])) bad.fetch_add(1);
              }
            }
          } else if (op < 78) {
            const int v = db.version[Db::index(key)].fetch_add(1) + 1;
            (void)cache.put(key, key + "#" + std::to_string(v));
          } else if (op < 86) {
            db.version[Db::index(key)].fetch_add(1);
            (void)cache.invalidate(key);
          } else if (op < 87) {
            (void)cache.invalidate_all();
          } else if (op < 90) {
            if (auto v = cache.get_if_present(key); v && !well_formed(key, *v)) bad.fetch_add(1);
          } else {
            clock->advance(milliseconds(rng() % 40));
          }
        }
      });
    }
    for (auto& th : threads) th.join();

    const CacheStats s = cache.stats();
    EXPECT_GT(s.hits + s.stale_hits, 0u);
    EXPECT_GT(s.loads, 0u);
    EXPECT_GT(s.coalesced + s.refreshes, 0u);
    EXPECT_EQ(s.store_errors, 0u);
  }  // ~Cache waits for running refreshes
  EXPECT_EQ(bad.load(), 0);

  // Quiet now: every key's stored value is well formed.
  for (int i = 0; i < Db::kKeys; ++i) {
    const std::string k = "k" + std::to_string(i);
    if (auto e = store->raw(k)) {
      EXPECT_TRUE(well_formed(k, e->value)) << e->value;
    }
  }
}

TEST(CacheStressTest, MixedOperationsStayConsistent) { run_mixed_operations(milliseconds(0)); }

TEST(CacheStressTest, MixedOperationsWithLoadTimeoutStayConsistent) {
  run_mixed_operations(milliseconds(1));
}

// After an invalidate returns, no load that started before it may leave its
// value in the store, however the threads interleave.
TEST(CacheStressTest, InvalidateNeverLosesToAnOlderLoad) {
  auto clock = std::make_shared<ManualClock>(from_unix_millis(1'700'000'000'000));
  auto store = std::make_shared<testing::MapStore<std::string, std::string>>(clock);
  CacheOptions<std::string, std::string> o;
  o.ttl = seconds(100);
  o.clock = clock;
  o.executor = std::make_shared<ThreadPoolExecutor>();
  Cache<std::string, std::string> cache(store, o);
  std::atomic<int> version{0};
  constexpr int kRounds = 300;
  for (int r = 0; r < kRounds; ++r) {
    std::barrier sync(2);
    std::thread reader([&] {
      sync.arrive_and_wait();
      (void)cache.get_or_load("k",
                              [&](const std::string&) { return std::to_string(version.load()); });
    });
    sync.arrive_and_wait();
    const int now_version = version.fetch_add(1) + 1;
    ASSERT_TRUE(cache.invalidate("k").ok());
    reader.join();
    // Whatever is cached was read at or after the update.
    if (auto e = store->raw("k")) {
      EXPECT_GE(std::stoi(e->value), now_version);
    }
    ASSERT_TRUE(cache.invalidate("k").ok());
  }
}

}  // namespace
}  // namespace larder
