// SPDX-License-Identifier: Apache-2.0
//
// LocalStore::set_capacity (and Cache::set_capacity over it): the bound
// changes at runtime, shrinking evicts through the policy (listener and
// counters see it), growing makes room, bad bounds are refused, and a
// concurrent stress test of resizes racing gets and puts (run under TSan).
#include <atomic>
#include <barrier>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "larder/cache.h"
#include "larder/internal/mutex.h"
#include "larder/local_cache.h"
#include "larder/local_store.h"

namespace larder {
namespace {

using std::chrono::hours;

struct Fixture {
  std::shared_ptr<ManualClock> clock =
      std::make_shared<ManualClock>(from_unix_millis(1'700'000'000'000));
  Entry<int> entry(int v) const {
    const TimePoint now = clock->now();
    return Entry<int>{v, now + hours(1), now + hours(2)};
  }
};

struct Recorder {
  internal::Mutex mu;
  std::vector<std::tuple<int, int, RemovalCause>> events ABSL_GUARDED_BY(mu);
  std::function<void(const int&, const int&, RemovalCause)> listener() {
    return [this](const int& k, const int& v, RemovalCause c) {
      internal::MutexLock l(&mu);
      events.emplace_back(k, v, c);
    };
  }
  std::vector<std::tuple<int, int, RemovalCause>> snapshot() {
    internal::MutexLock l(&mu);
    return events;
  }
};

TEST(LocalStoreResizeTest, ShrinkEvictsThroughThePolicyAtOnce) {
  Fixture f;
  Recorder rec;
  LocalStore<int, int> s(
      {.max_entries = 100, .shards = 1, .clock = f.clock, .policy = EvictionPolicy::kLru},
      {.on_removal = rec.listener()});
  for (int k = 0; k < 100; ++k) ASSERT_TRUE(s.put(k, f.entry(k)).ok());
  ASSERT_TRUE(s.get(0).ok());  // 0 becomes the most recently used
  EXPECT_EQ(s.capacity(), 100u);

  ASSERT_TRUE(s.set_capacity(40).ok());
  EXPECT_EQ(s.capacity(), 40u);
  EXPECT_EQ(s.size(), 40u);
  EXPECT_EQ(s.counters().evictions, 60u);
  // The 60 least recently used, in LRU order, each reported once as evicted.
  std::vector<std::tuple<int, int, RemovalCause>> want;
  for (int k = 1; k <= 60; ++k) want.emplace_back(k, k, RemovalCause::kEvicted);
  EXPECT_EQ(rec.snapshot(), want);
  EXPECT_TRUE(s.peek(0).has_value());
  for (int k = 61; k < 100; ++k) EXPECT_TRUE(s.peek(k).has_value()) << k;

  // Later puts keep to the new bound.
  for (int k = 100; k < 200; ++k) {
    ASSERT_TRUE(s.put(k, f.entry(k)).ok());
    ASSERT_LE(s.size(), 40u);
  }
}

TEST(LocalStoreResizeTest, ShrinkEveryShardWithTheDefaultPolicy) {
  Fixture f;
  LocalStore<int, int> s({.max_entries = 4096, .shards = 8, .clock = f.clock});
  for (int k = 0; k < 4096; ++k) ASSERT_TRUE(s.put(k, f.entry(k)).ok());
  // Keys are not spread exactly evenly: a full shard already evicted some.
  const std::size_t before = s.size();
  const std::uint64_t evicted = s.counters().evictions;
  ASSERT_GT(before, 3000u);
  ASSERT_TRUE(s.set_capacity(100).ok());
  EXPECT_LE(s.size(), 100u);
  EXPECT_GT(s.size(), 50u);
  EXPECT_EQ(s.counters().evictions - evicted, before - s.size());
  for (int k = 5000; k < 9000; ++k) {
    ASSERT_TRUE(s.put(k, f.entry(k)).ok());
    ASSERT_LE(s.size(), 100u);
  }
}

TEST(LocalStoreResizeTest, GrowMakesRoom) {
  Fixture f;
  LocalStore<int, int> s({.max_entries = 16, .shards = 4, .clock = f.clock});
  for (int k = 0; k < 100; ++k) ASSERT_TRUE(s.put(k, f.entry(k)).ok());
  EXPECT_EQ(s.size(), 16u);
  const std::uint64_t evicted = s.counters().evictions;

  ASSERT_TRUE(s.set_capacity(5000).ok());
  EXPECT_EQ(s.capacity(), 5000u);
  for (int k = 1000; k < 5000; ++k) ASSERT_TRUE(s.put(k, f.entry(k)).ok());
  // Under the new bound nothing more was evicted (each shard holds its share
  // of 5000: keys spread over 4 shards stay well within 1250 each).
  EXPECT_EQ(s.counters().evictions, evicted);
  EXPECT_EQ(s.size(), 16u + 4000u);
  for (int k = 1000; k < 5000; ++k) {
    absl::StatusOr<std::optional<Entry<int>>> got = s.get(k);
    ASSERT_TRUE(got.ok() && got->has_value()) << k;
    EXPECT_EQ((*got)->value, k);
  }
}

TEST(LocalStoreResizeTest, WeightedStoreResizesItsWeightBound) {
  Fixture f;
  Recorder rec;
  LocalStore<int, int> s(
      {.max_entries = 100, .max_weight = 100, .shards = 1, .clock = f.clock},
      {.weigher = [](const int&, const int& v) { return static_cast<std::size_t>(v); },
       .on_removal = rec.listener()});
  for (int k = 0; k < 50; ++k) ASSERT_TRUE(s.put(k, f.entry(1 + k % 5)).ok());
  ASSERT_GT(s.weight(), 50u);
  ASSERT_TRUE(s.set_capacity(50).ok());
  EXPECT_LE(s.weight(), 50u);
  EXPECT_EQ(rec.snapshot().size(), s.counters().evictions);
  // An entry heavier than the new bound is not stored.
  ASSERT_TRUE(s.put(999, f.entry(60)).ok());
  EXPECT_FALSE(s.peek(999).has_value());
}

TEST(LocalStoreResizeTest, RefusesBadBoundsAndChangesNothing) {
  Fixture f;
  LocalStore<int, int> s({.max_entries = 64, .shards = 4, .clock = f.clock});
  for (int k = 0; k < 64; ++k) ASSERT_TRUE(s.put(k, f.entry(k)).ok());
  const std::size_t size = s.size();
  for (std::uint64_t bad : {std::uint64_t{0}, std::uint64_t{3}}) {
    const absl::Status st = s.set_capacity(bad);
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(st.message().find("shard_count"), std::string::npos) << st;
  }
  EXPECT_EQ(s.capacity(), 64u);
  EXPECT_EQ(s.size(), size);
  EXPECT_TRUE(s.set_capacity(4).ok());  // one per shard is the least
  EXPECT_LE(s.size(), 4u);
}

// A store without a bound of its own: Store's default.
class UnboundedStore : public Store<int, std::string> {
 public:
  absl::StatusOr<std::optional<Entry<std::string>>> get(const int&) override {
    return std::nullopt;
  }
  absl::Status put(const int&, Entry<std::string>) override { return absl::OkStatus(); }
  absl::Status erase(const int&) override { return absl::OkStatus(); }
};

TEST(LocalStoreResizeTest, CacheReachesTheStoresBound) {
  auto cache =
      make_local_cache<int, std::string>({.max_entries = 1000, .shards = 1}, {.ttl = hours(1)});
  for (int k = 0; k < 1000; ++k) ASSERT_TRUE(cache.put(k, std::to_string(k)).ok());
  EXPECT_EQ(cache.estimated_size(), 1000u);
  ASSERT_TRUE(cache.set_capacity(10).ok());
  EXPECT_EQ(cache.estimated_size(), 10u);
  EXPECT_EQ(cache.stats().evictions, 990u);
  EXPECT_EQ(cache.set_capacity(0).code(), absl::StatusCode::kInvalidArgument);

  Cache<int, std::string> other(std::make_shared<UnboundedStore>(), {.ttl = hours(1)});
  EXPECT_EQ(other.set_capacity(10).code(), absl::StatusCode::kUnimplemented);
}

// Resizes racing gets, puts and erases on every shard. Checks: values are
// never mixed up, every eviction is reported once, and once the last resize
// returned the store keeps to its bound.
TEST(LocalStoreResizeTest, ConcurrentResizesGetsAndPuts) {
  Fixture f;
  std::atomic<std::uint64_t> evicted_seen{0};
  LocalStore<int, std::string> s(
      LocalStoreOptions{.max_entries = 256, .shards = 4, .clock = f.clock},
      {.on_removal = [&](const int&, const std::string&, RemovalCause c) {
        if (c == RemovalCause::kEvicted) evicted_seen.fetch_add(1);
      }});
  constexpr int kThreads = 3;
  constexpr int kOps = 4000;
  constexpr std::uint64_t kMaxBound = 1024;
  std::barrier start(kThreads + 1);
  std::atomic<bool> over{false};
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t) {
    ts.emplace_back([&, t] {
      start.arrive_and_wait();
      std::uint64_t x = 88172645463325252ull + static_cast<std::uint64_t>(t);
      for (int i = 0; i < kOps; ++i) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        const int k = static_cast<int>(x % 2048);
        const int op = static_cast<int>((x >> 20) % 10);
        if (op < 5) {
          auto got = s.get(k);
          ASSERT_TRUE(got.ok());
          if (got->has_value()) {
            ASSERT_EQ((*got)->value, "v" + std::to_string(k));
          }
        } else if (op < 9) {
          const TimePoint now = f.clock->now();
          ASSERT_TRUE(s.put(k, {"v" + std::to_string(k), now + hours(1), now + hours(2)}).ok());
        } else {
          ASSERT_TRUE(s.erase(k).ok());
        }
        if (s.size() > kMaxBound) over = true;
      }
    });
  }
  start.arrive_and_wait();
  const std::uint64_t bounds[] = {64, kMaxBound, 8, 300, 4, 777, 16};
  for (int round = 0; round < 40; ++round) {
    ASSERT_TRUE(s.set_capacity(bounds[round % 7]).ok());
  }
  for (auto& t : ts) t.join();
  EXPECT_FALSE(over.load()) << "more entries than any bound ever set";
  ASSERT_TRUE(s.set_capacity(32).ok());
  EXPECT_LE(s.size(), 32u);
  for (int k = 0; k < 200; ++k) {
    ASSERT_TRUE(
        s.put(10'000 + k, {"v", f.clock->now() + hours(1), f.clock->now() + hours(2)}).ok());
    ASSERT_LE(s.size(), 32u);
  }
  EXPECT_EQ(evicted_seen.load(), s.counters().evictions);
  EXPECT_EQ(s.capacity(), 32u);
}

}  // namespace
}  // namespace larder
