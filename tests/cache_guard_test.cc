// SPDX-License-Identifier: Apache-2.0
//
// Cache<K, V> with a LoadGuard (load_guard.h): the cache side of the
// cross-process protocol, against an in-process fake guard whose "other
// process" is scripted by the test.
#include <functional>
#include <memory>
#include <string>

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
  std::function<absl::StatusOr<bool>()> acquire = [] { return true; };
  std::function<absl::StatusOr<bool>()> held = [] { return false; };
  std::function<void()> on_release;
  int acquires = 0, held_calls = 0, leases_alive = 0, released = 0;

  absl::StatusOr<std::unique_ptr<LoadLease>> try_acquire(const std::string&) override {
    ++acquires;
    absl::StatusOr<bool> won = acquire();
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
  env.guard->acquire = []() -> absl::StatusOr<bool> { return absl::UnavailableError("redis down"); };
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
