// SPDX-License-Identifier: Apache-2.0
//
// Cache<K, V> with a LoadGuard (load_guard.h): the cache side of the
// cross-process protocol, against an in-process fake guard whose "other
// process" is scripted by the test.
#include <functional>
#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "gtest/gtest.h"
#include "larder/cache.h"
#include "tests/testing/cache_env.h"
#include "tests/testing/recording_loader.h"

namespace larder {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using Env = testing::CacheEnv<>;
using SCache = Cache<std::string, std::string>;
using Loader = testing::RecordingLoader<std::string, std::string>;
using Map = absl::flat_hash_map<std::string, std::string>;
using Batch = testing::RecordingBatchLoader<std::string, std::string>;

absl::StatusOr<Map> ours(std::span<const std::string> keys) {
  Map m;
  for (const auto& k : keys) m[k] = "ours:" + k;
  return m;
}

// FakeGuard: answers from scripted functions; counts leases alive.
class FakeGuard : public LoadGuard<std::string> {
 public:
  struct Lease : LoadLease {
    explicit Lease(FakeGuard* g) : g(g) { ++g->leases_alive; }
    ~Lease() override {
      --g->leases_alive;
      ++g->released;
      if (g->on_release) g->on_release();
    }
    FakeGuard* g;
  };

  // acquire: true = this process wins; false = another holds it.
  // acquire_for, when set, decides per key instead.
  std::function<absl::StatusOr<bool>()> acquire = [] { return true; };
  std::function<absl::StatusOr<bool>(const std::string&)> acquire_for;
  std::function<absl::StatusOr<bool>()> held = [] { return false; };
  std::function<void()> on_release;
  int acquires = 0, held_calls = 0, leases_alive = 0, released = 0;

  absl::StatusOr<std::unique_ptr<LoadLease>> try_acquire(const std::string& key) override {
    ++acquires;
    absl::StatusOr<bool> won = acquire_for ? acquire_for(key) : acquire();
    if (!won.ok()) return won.status();
    if (!*won) return std::unique_ptr<LoadLease>();
    return std::unique_ptr<LoadLease>(std::make_unique<Lease>(this));
  }
  absl::StatusOr<bool> is_held(const std::string&) override {
    ++held_calls;
    return held();
  }
  std::chrono::milliseconds wait() const override { return milliseconds(500); }
  std::chrono::milliseconds poll_interval() const override { return milliseconds(0); }
};

struct GuardEnv : Env {
  std::shared_ptr<FakeGuard> guard = std::make_shared<FakeGuard>();
  CacheOptions<std::string, std::string> guarded() const {
    auto o = options();
    o.stale_while_revalidate = seconds(10);
    o.load_guard = guard;
    return o;
  }
};

TEST(CacheGuardTest, WinnerLoadsStoresThenReleases) {
  GuardEnv env;
  SCache cache(env.store, env.guarded());
  bool stored_before_release = false;
  env.guard->on_release = [&] { stored_before_release = env.store->raw("k").has_value(); };
  Loader loader([](const std::string&) -> absl::StatusOr<std::string> { return "v"; });
  EXPECT_EQ(*cache.get_or_load("k", loader), "v");
  EXPECT_EQ(loader.calls(), 1);
  EXPECT_EQ(env.guard->released, 1);
  EXPECT_EQ(env.guard->leases_alive, 0);
  EXPECT_TRUE(stored_before_release);
}

TEST(CacheGuardTest, LoserWaitsForTheOtherProcessesValue) {
  GuardEnv env;
  SCache cache(env.store, env.guarded());
  env.guard->acquire = [] { return false; };
  env.guard->held = [&]() -> absl::StatusOr<bool> {
    // The other process finishes its load while we poll.
    const TimePoint now = env.clock->now();
    EXPECT_TRUE(env.store->put("k", {"theirs", now + seconds(10), now + seconds(20)}).ok());
    return true;
  };
  Loader loader([](const std::string&) -> absl::StatusOr<std::string> { return "ours"; });
  EXPECT_EQ(*cache.get_or_load("k", loader), "theirs");
  EXPECT_EQ(loader.calls(), 0);
}

TEST(CacheGuardTest, LoserRetriesWhenTheHolderLeavesWithoutAValue) {
  GuardEnv env;
  SCache cache(env.store, env.guarded());
  int attempts = 0;
  env.guard->acquire = [&]() -> absl::StatusOr<bool> { return ++attempts >= 2; };
  env.guard->held = [] { return false; };  // the holder died
  Loader loader([](const std::string&) -> absl::StatusOr<std::string> { return "ours"; });
  EXPECT_EQ(*cache.get_or_load("k", loader), "ours");
  EXPECT_EQ(loader.calls(), 1);
  EXPECT_EQ(env.guard->acquires, 2);
  EXPECT_EQ(env.guard->leases_alive, 0);
}

TEST(CacheGuardTest, LoserLoadsAnywayAfterWait) {
  GuardEnv env;
  SCache cache(env.store, env.guarded());
  env.guard->acquire = [] { return false; };
  env.guard->held = [&]() -> absl::StatusOr<bool> {
    env.clock->advance(milliseconds(200));  // the holder is slow
    return true;
  };
  Loader loader([](const std::string&) -> absl::StatusOr<std::string> { return "ours"; });
  EXPECT_EQ(*cache.get_or_load("k", loader), "ours");
  EXPECT_EQ(loader.calls(), 1);
  EXPECT_EQ(env.guard->held_calls, 3);  // 200, 400, 600 ms: past the 500 ms wait
}

TEST(CacheGuardTest, GuardDownMeansLoadWithoutIt) {
  GuardEnv env;
  SCache cache(env.store, env.guarded());
  env.guard->acquire = []() -> absl::StatusOr<bool> {
    return absl::UnavailableError("redis down");
  };
  Loader loader([](const std::string&) -> absl::StatusOr<std::string> { return "v"; });
  EXPECT_EQ(*cache.get_or_load("k", loader), "v");
  EXPECT_EQ(loader.calls(), 1);
}

TEST(CacheGuardTest, BackgroundRefreshIsLeftToTheProcessHoldingTheGuard) {
  GuardEnv env;
  SCache cache(env.store, env.guarded());
  Loader loader([](const std::string&) -> absl::StatusOr<std::string> { return "v"; });
  ASSERT_TRUE(cache.get_or_load("k", loader).ok());
  env.clock->advance(seconds(12));
  env.guard->acquire = [] { return false; };
  EXPECT_EQ(*cache.get_or_load("k", loader), "v");
  env.executor->run_all();
  EXPECT_EQ(loader.calls(), 1);
  // When this process wins, it refreshes.
  env.guard->acquire = [] { return true; };
  EXPECT_EQ(*cache.get_or_load("k", loader), "v");
  env.executor->run_all();
  EXPECT_EQ(loader.calls(), 2);
  EXPECT_EQ(env.guard->leases_alive, 0);
}

}  // namespace
}  // namespace larder

namespace larder {
namespace {

// get_many takes the guard per key too: the keys it wins go to ONE batch
// call, their leases are released only after the values are stored.
TEST(CacheGuardTest, GetManyWinsLoadsOneBatchAndReleasesAfterStoring) {
  GuardEnv env;
  SCache cache(env.store, env.guarded());
  const std::vector<std::string> keys = {"a", "b", "c"};
  int stored_at_first_release = -1;
  env.guard->on_release = [&] {
    if (stored_at_first_release >= 0) return;
    stored_at_first_release = 0;
    for (const auto& k : keys) stored_at_first_release += env.store->raw(k).has_value();
  };
  Batch load(ours);
  auto got = cache.get_many(std::span<const std::string>(keys), load);
  ASSERT_TRUE(got.ok());
  for (const auto& k : keys) EXPECT_EQ(got->at(k), "ours:" + k);
  EXPECT_EQ(load.calls(), 1);
  EXPECT_EQ(env.guard->acquires, 3);
  EXPECT_EQ(env.guard->released, 3);
  EXPECT_EQ(env.guard->leases_alive, 0);
  EXPECT_EQ(stored_at_first_release, 3);
}

// A key another process holds is not loaded here: get_many loads the keys it
// won first (and releases them), then waits for the other process's value.
TEST(CacheGuardTest, GetManyWaitsForKeysAnotherProcessIsLoading) {
  GuardEnv env;
  SCache cache(env.store, env.guarded());
  env.guard->acquire_for = [](const std::string& k) -> absl::StatusOr<bool> { return k != "c"; };
  int leases_while_waiting = -1;
  env.guard->held = [&]() -> absl::StatusOr<bool> {
    leases_while_waiting = env.guard->leases_alive;
    const TimePoint now = env.clock->now();
    EXPECT_TRUE(env.store->put("c", {"theirs", now + seconds(10), now + seconds(20)}).ok());
    return true;
  };
  const std::vector<std::string> keys = {"a", "b", "c"};
  Batch load(ours);
  auto got = cache.get_many(std::span<const std::string>(keys), load);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->at("a"), "ours:a");
  EXPECT_EQ(got->at("b"), "ours:b");
  EXPECT_EQ(got->at("c"), "theirs");
  ASSERT_EQ(load.calls(), 1);
  EXPECT_EQ(load.batches()[0], (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(leases_while_waiting, 0);  // never waits while holding leases
  EXPECT_EQ(env.guard->leases_alive, 0);
}

// The other process takes too long: after wait() the key is loaded here, in
// a second batch.
TEST(CacheGuardTest, GetManyLoadsAKeyItsHolderDoesNotDeliverInTime) {
  GuardEnv env;
  SCache cache(env.store, env.guarded());
  env.guard->acquire_for = [](const std::string& k) -> absl::StatusOr<bool> { return k == "a"; };
  env.guard->held = [&]() -> absl::StatusOr<bool> {
    env.clock->advance(milliseconds(200));
    return true;
  };
  const std::vector<std::string> keys = {"a", "b", "c"};
  Batch load(ours);
  auto got = cache.get_many(std::span<const std::string>(keys), load);
  ASSERT_TRUE(got.ok());
  for (const auto& k : keys) EXPECT_EQ(got->at(k), "ours:" + k);
  ASSERT_EQ(load.calls(), 2);
  EXPECT_EQ(load.batches()[0], (std::vector<std::string>{"a"}));
  EXPECT_EQ(load.batches()[1], (std::vector<std::string>{"b", "c"}));
  EXPECT_EQ(env.guard->held_calls, 3);  // one shared deadline (500 ms), not one per key
  EXPECT_EQ(env.guard->leases_alive, 0);
}

TEST(CacheGuardTest, GetManyWithTheGuardDownLoadsEverythingInOneBatch) {
  GuardEnv env;
  SCache cache(env.store, env.guarded());
  env.guard->acquire = []() -> absl::StatusOr<bool> {
    return absl::UnavailableError("redis down");
  };
  const std::vector<std::string> keys = {"a", "b"};
  Batch load(ours);
  auto got = cache.get_many(std::span<const std::string>(keys), load);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->size(), 2u);
  EXPECT_EQ(load.calls(), 1);
}

}  // namespace
}  // namespace larder
