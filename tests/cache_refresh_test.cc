// SPDX-License-Identifier: Apache-2.0
//
// Cache<K, V>: stale-while-revalidate, refresh-ahead, stale-if-error,
// load_timeout and the refresh executor.
#include <atomic>
#include <chrono>
#include <latch>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "larder/cache.h"
#include "tests/testing/blocking_loader.h"
#include "tests/testing/cache_env.h"
#include "tests/testing/recording_loader.h"
#include "tests/testing/testing.h"

namespace larder {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using Env = testing::CacheEnv<>;
using SCache = Cache<std::string, std::string>;
using Loader = testing::RecordingLoader<std::string, std::string>;
using Blocking = testing::BlockingLoader<std::string, std::string>;

Loader::Answer constant(std::string v) {
  return [v](const std::string&) -> absl::StatusOr<std::string> { return v; };
}
Loader::Answer failing(absl::Status s) {
  return [s](const std::string&) -> absl::StatusOr<std::string> { return s; };
}

CacheOptions<std::string, std::string> swr_options(const Env& env) {
  auto o = env.options();
  o.ttl = seconds(10);
  o.stale_while_revalidate = seconds(10);
  return o;
}

TEST(CacheRefreshTest, StaleValueIsServedAndRefreshedOnceInTheBackground) {
  Env env;
  SCache cache(env.store, swr_options(env));
  Loader loader(constant("v1"));
  ASSERT_EQ(*cache.get_or_load("k", loader), "v1");
  loader.set_answer(constant("v2"));
  env.clock->advance(seconds(15));  // stale
  EXPECT_EQ(*cache.get_or_load("k", loader), "v1");
  EXPECT_EQ(*cache.get_or_load("k", loader), "v1");
  EXPECT_EQ(loader.calls(), 1);            // nothing ran in the caller
  EXPECT_EQ(env.executor->pending(), 1u);  // one refresh, not two
  EXPECT_EQ(env.executor->run_all(), 1u);
  EXPECT_EQ(loader.calls(), 2);
  EXPECT_EQ(*cache.get_or_load("k", loader), "v2");
  CacheStats s = cache.stats();
  EXPECT_EQ(s.stale_hits, 2u);
  EXPECT_EQ(s.refreshes, 1u);
  EXPECT_EQ(s.loads, 2u);
  EXPECT_EQ(s.hits, 1u);
  EXPECT_EQ(env.store->raw("k")->fresh_until, env.clock->now() + seconds(10));
}

// Stale reads keep returning at once while the refresh is stuck in the loader.
TEST(CacheRefreshTest, StaleReadsReturnWhileTheRefreshIsBlocked) {
  Env env;
  SCache cache(env.store, swr_options(env));
  Blocking loader([](const std::string&) -> absl::StatusOr<std::string> { return "v1"; });
  loader.open();
  ASSERT_EQ(*cache.get_or_load("k", loader), "v1");
  loader.close();
  loader.set_answer([](const std::string&) -> absl::StatusOr<std::string> { return "v2"; });
  env.clock->advance(seconds(12));
  EXPECT_EQ(*cache.get_or_load("k", loader), "v1");      // queues the refresh
  std::thread worker([&] { env.executor->run_all(); });  // runs it; it parks in the loader
  loader.wait_entered(2);
  std::vector<std::thread> readers;
  for (int i = 0; i < 8; ++i) {
    readers.emplace_back([&] {
      for (int j = 0; j < 50; ++j) EXPECT_EQ(*cache.get_or_load("k", loader), "v1");
    });
  }
  for (auto& t : readers) t.join();
  EXPECT_EQ(loader.calls(), 2);  // still the one refresh
  EXPECT_EQ(env.executor->pending(), 0u);
  loader.open();
  worker.join();
  EXPECT_EQ(*cache.get_or_load("k", loader), "v2");
  EXPECT_EQ(cache.stats().refreshes, 1u);
}

TEST(CacheRefreshTest, RefreshFailureKeepsTheStaleValueAndIsReported) {
  Env env;
  auto o = swr_options(env);
  std::vector<std::pair<std::string, absl::StatusCode>> reported;
  o.on_refresh_error = [&](const std::string& k, const absl::Status& s) {
    reported.emplace_back(k, s.code());
  };
  SCache cache(env.store, o);
  Loader loader(constant("v1"));
  ASSERT_EQ(*cache.get_or_load("k", loader), "v1");
  loader.set_answer(failing(absl::UnavailableError("db down")));
  env.clock->advance(seconds(12));
  EXPECT_EQ(*cache.get_or_load("k", loader), "v1");
  env.executor->run_all();
  ASSERT_EQ(reported.size(), 1u);
  EXPECT_EQ(reported[0].first, "k");
  EXPECT_EQ(reported[0].second, absl::StatusCode::kUnavailable);
  EXPECT_EQ(cache.stats().refresh_failures, 1u);
  EXPECT_EQ(cache.stats().load_failures, 1u);
  // Still served until stale_until; the next stale read tries again.
  env.clock->advance(seconds(7));
  EXPECT_EQ(*cache.get_or_load("k", loader), "v1");
  EXPECT_EQ(env.executor->run_all(), 1u);
  // Past stale_until the value is gone and the error reaches the caller.
  env.clock->advance(seconds(1));
  EXPECT_EQ(cache.get_or_load("k", loader).status().code(), absl::StatusCode::kUnavailable);
}

// After a failed background refresh, hits keep the value and start no new
// refresh of that key for error_backoff (a hot key must not turn every hit
// into another call to a failing source); then refreshes resume, and a
// success clears the pause.
TEST(CacheRefreshTest, FailedRefreshIsNotRetriedWithinTheBackoff) {
  Env env;
  auto o = env.options();
  o.ttl = seconds(10);
  o.refresh_ahead = 0.8;
  o.stale_while_revalidate = seconds(10);
  o.error_backoff = seconds(2);
  SCache cache(env.store, o);
  Loader loader(constant("v1"));
  ASSERT_EQ(*cache.get_or_load("k", loader), "v1");
  loader.set_answer(failing(absl::UnavailableError("db down")));
  env.clock->advance(seconds(8));  // the refresh-ahead point
  EXPECT_EQ(*cache.get_or_load("k", loader), "v1");
  EXPECT_EQ(env.executor->run_all(), 1u);
  EXPECT_EQ(loader.calls(), 2);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(*cache.get_or_load("k", loader), "v1");
  EXPECT_EQ(env.executor->pending(), 0u);
  env.clock->advance(seconds(1));
  EXPECT_EQ(*cache.get_or_load("k", loader), "v1");
  EXPECT_EQ(env.executor->pending(), 0u);
  env.clock->advance(milliseconds(1500));  // stale now, and the pause is over
  EXPECT_EQ(*cache.get_or_load("k", loader), "v1");
  EXPECT_EQ(env.executor->run_all(), 1u);
  EXPECT_EQ(loader.calls(), 3);
  EXPECT_EQ(cache.stats().refresh_failures, 2u);
  // Paused again (stale hits, no refresh) until the source recovers.
  for (int i = 0; i < 5; ++i) EXPECT_EQ(*cache.get_or_load("k", loader), "v1");
  EXPECT_EQ(env.executor->pending(), 0u);
  loader.set_answer(constant("v2"));
  env.clock->advance(seconds(2));
  EXPECT_EQ(*cache.get_or_load("k", loader), "v1");
  EXPECT_EQ(env.executor->run_all(), 1u);
  EXPECT_EQ(*cache.get_or_load("k", loader), "v2");
  EXPECT_EQ(loader.calls(), 4);
}

// error_backoff = 0 keeps the old behaviour: the next hit tries again.
TEST(CacheRefreshTest, ZeroBackoffRetriesTheRefreshOnTheNextHit) {
  Env env;
  auto o = swr_options(env);
  o.error_backoff = std::chrono::milliseconds(0);
  SCache cache(env.store, o);
  Loader loader(constant("v1"));
  ASSERT_EQ(*cache.get_or_load("k", loader), "v1");
  loader.set_answer(failing(absl::UnavailableError("db down")));
  env.clock->advance(seconds(12));
  EXPECT_EQ(*cache.get_or_load("k", loader), "v1");
  EXPECT_EQ(env.executor->run_all(), 1u);
  EXPECT_EQ(*cache.get_or_load("k", loader), "v1");
  EXPECT_EQ(env.executor->run_all(), 1u);
  EXPECT_EQ(loader.calls(), 3);
}

TEST(CacheRefreshTest, ThrowingRefreshCallbackIsContained) {
  Env env;
  auto o = swr_options(env);
  o.on_refresh_error = [](const std::string&, const absl::Status&) {
    throw std::runtime_error("callback bug");
  };
  SCache cache(env.store, o);
  Loader loader(constant("v1"));
  ASSERT_TRUE(cache.get_or_load("k", loader).ok());
  loader.set_answer([](const std::string&) -> absl::StatusOr<std::string> {
    throw std::runtime_error("loader bug");
  });
  env.clock->advance(seconds(12));
  EXPECT_EQ(*cache.get_or_load("k", loader), "v1");
  env.executor->run_all();  // neither exception escapes
  EXPECT_EQ(cache.stats().refresh_failures, 1u);
}

TEST(CacheRefreshTest, RefreshThatFindsNothingDropsTheEntry) {
  Env env;
  SCache cache(env.store, swr_options(env));
  Loader loader(constant("v1"));
  ASSERT_TRUE(cache.get_or_load("k", loader).ok());
  loader.set_answer(failing(absl::NotFoundError("deleted")));
  env.clock->advance(seconds(12));
  EXPECT_EQ(*cache.get_or_load("k", loader), "v1");
  env.executor->run_all();
  EXPECT_FALSE(env.store->raw("k").has_value());
}

TEST(CacheRefreshTest, RefreshIsSkippedAndCountedWhenTheQueueIsFull) {
  Env env;
  auto full = std::make_shared<testing::ManualExecutor>(/*capacity=*/0);
  auto o = swr_options(env);
  o.executor = full;
  SCache cache(env.store, o);
  Loader loader(constant("v1"));
  ASSERT_TRUE(cache.get_or_load("k", loader).ok());
  env.clock->advance(seconds(12));
  EXPECT_EQ(*cache.get_or_load("k", loader), "v1");  // never blocks
  EXPECT_EQ(*cache.get_or_load("k", loader), "v1");
  EXPECT_EQ(cache.stats().refreshes_dropped, 2u);
  EXPECT_EQ(cache.stats().refreshes, 0u);
  EXPECT_EQ(loader.calls(), 1);
}

TEST(CacheRefreshTest, RefreshAheadKeepsAHotKeyFresh) {
  Env env;
  auto o = env.options();
  o.ttl = seconds(10);
  o.refresh_ahead = 0.8;
  SCache cache(env.store, o);
  Loader loader(constant("v1"));
  ASSERT_EQ(*cache.get_or_load("k", loader), "v1");
  loader.set_answer(constant("v2"));
  env.clock->advance(seconds(7));
  EXPECT_EQ(*cache.get_or_load("k", loader), "v1");
  EXPECT_EQ(env.executor->pending(), 0u);  // before the 80% point
  env.clock->advance(seconds(1));
  EXPECT_EQ(*cache.get_or_load("k", loader), "v1");
  EXPECT_EQ(*cache.get_or_load("k", loader), "v1");
  EXPECT_EQ(env.executor->pending(), 1u);
  env.executor->run_all();
  EXPECT_EQ(*cache.get_or_load("k", loader), "v2");
  EXPECT_EQ(env.store->raw("k")->fresh_until, env.clock->now() + seconds(10));
  CacheStats s = cache.stats();
  EXPECT_EQ(s.stale_hits, 0u);
  EXPECT_EQ(s.misses, 1u);
  EXPECT_EQ(s.hits, 4u);
}

TEST(CacheRefreshTest, StaleIfErrorServesTheStaleValueAndBacksOff) {
  Env env;
  auto o = env.options();
  o.ttl = seconds(10);
  o.stale_if_error = seconds(60);
  o.error_backoff = seconds(2);
  SCache cache(env.store, o);
  Loader loader(constant("v1"));
  ASSERT_EQ(*cache.get_or_load("k", loader), "v1");
  loader.set_answer(failing(absl::UnavailableError("db down")));
  env.clock->advance(seconds(20));  // past ttl: a load in the caller
  EXPECT_EQ(*cache.get_or_load("k", loader), "v1");
  EXPECT_EQ(loader.calls(), 2);
  // Within the back-off the failing source is not asked again.
  env.clock->advance(seconds(1));
  EXPECT_EQ(*cache.get_or_load("k", loader), "v1");
  EXPECT_EQ(loader.calls(), 2);
  env.clock->advance(seconds(1));
  EXPECT_EQ(*cache.get_or_load("k", loader), "v1");
  EXPECT_EQ(loader.calls(), 3);
  CacheStats s = cache.stats();
  EXPECT_EQ(s.load_failures, 2u);
  EXPECT_EQ(s.stale_hits, 2u);
  // Never kept past the original stale_until (written + 10 s + 60 s).
  env.clock->advance(seconds(48));
  EXPECT_EQ(cache.get_or_load("k", loader).status().code(), absl::StatusCode::kUnavailable);
  // The source recovers: a fresh value again.
  loader.set_answer(constant("v2"));
  EXPECT_EQ(*cache.get_or_load("k", loader), "v2");
}

TEST(CacheRefreshTest, StaleIfErrorDoesNotMaskNotFound) {
  Env env;
  auto o = env.options();
  o.stale_if_error = seconds(60);
  SCache cache(env.store, o);
  Loader loader(constant("v1"));
  ASSERT_TRUE(cache.get_or_load("k", loader).ok());
  loader.set_answer(failing(absl::NotFoundError("deleted")));
  env.clock->advance(seconds(20));
  EXPECT_EQ(cache.get_or_load("k", loader).status().code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(env.store->raw("k").has_value());
}

TEST(CacheRefreshTest, WaitersFallBackToStaleWhenTheLoadFails) {
  Env env;
  auto o = env.options();
  o.stale_if_error = seconds(60);
  SCache cache(env.store, o);
  Blocking loader([](const std::string&) -> absl::StatusOr<std::string> { return "v1"; });
  loader.open();
  ASSERT_TRUE(cache.get_or_load("k", loader).ok());
  loader.close();
  loader.set_answer([](const std::string&) -> absl::StatusOr<std::string> {
    return absl::UnavailableError("db down");
  });
  env.clock->advance(seconds(20));
  std::vector<absl::StatusOr<std::string>> got(8);
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i)
    threads.emplace_back([&, i] { got[i] = cache.get_or_load("k", loader); });
  loader.wait_entered(2);
  EXPECT_TRUE(testing::eventually([&] { return cache.stats().coalesced >= 7; }))
      << "waited 20 s for 7 callers to join the flight";
  loader.open();
  for (auto& t : threads) t.join();
  for (auto& g : got) EXPECT_EQ(*g, "v1");
  EXPECT_EQ(loader.calls(), 2);
  EXPECT_EQ(cache.stats().stale_hits, 8u);
}

TEST(CacheRefreshTest, LoadTimeoutServesStaleAndStoresTheLateResult) {
  Env env;
  auto o = env.options();
  o.stale_if_error = seconds(60);
  o.load_timeout = milliseconds(20);
  SCache cache(env.store, o);
  Loader loader(constant("v1"));
  ASSERT_EQ(*cache.get_or_load("k", loader), "v1");  // no stale value: no timeout
  loader.set_answer(constant("v2"));
  env.clock->advance(seconds(20));
  // The load is queued on the (manual) executor and does not run; the caller
  // waits until load_timeout of Clock time passes, whatever real time does.
  std::atomic<bool> returned{false};
  absl::StatusOr<std::string> got;
  std::thread caller([&] {
    got = cache.get_or_load("k", loader);
    returned.store(true);
  });
  EXPECT_TRUE(testing::eventually([&] { return env.executor->pending() == 1; }))
      << "the load was not queued";
  env.clock->advance(milliseconds(19));
  EXPECT_FALSE(testing::eventually([&] { return returned.load(); }, milliseconds(50)))
      << "the caller gave up before load_timeout of Clock time (on real time?)";
  env.clock->advance(milliseconds(1));
  EXPECT_TRUE(testing::eventually([&] { return returned.load(); }))
      << "the caller still waits past load_timeout of Clock time";
  if (!returned.load()) env.executor->run_all();  // let it go, to fail instead of hanging
  caller.join();
  EXPECT_EQ(*got, "v1");
  EXPECT_EQ(cache.stats().load_timeouts, 1u);
  EXPECT_EQ(cache.stats().stale_hits, 1u);
  EXPECT_EQ(env.executor->run_all(), 1u);  // the load goes on and is stored
  EXPECT_EQ(*cache.get_or_load("k", loader), "v2");
  EXPECT_EQ(loader.calls(), 2);
}

TEST(CacheRefreshTest, LoadTimeoutWithAFullExecutorLoadsInTheCaller) {
  Env env;
  auto o = env.options();
  o.stale_if_error = seconds(60);
  o.load_timeout = milliseconds(20);
  o.executor = std::make_shared<testing::ManualExecutor>(0);
  SCache cache(env.store, o);
  Loader loader(constant("v1"));
  ASSERT_TRUE(cache.get_or_load("k", loader).ok());
  loader.set_answer(constant("v2"));
  env.clock->advance(seconds(20));
  EXPECT_EQ(*cache.get_or_load("k", loader), "v2");
  EXPECT_EQ(cache.stats().load_timeouts, 0u);
}

TEST(CacheRefreshTest, DestroyingTheCacheCancelsQueuedRefreshes) {
  Env env;
  Loader loader(constant("v1"));
  {
    SCache cache(env.store, swr_options(env));
    ASSERT_TRUE(cache.get_or_load("k", loader).ok());
    env.clock->advance(seconds(12));
    ASSERT_TRUE(cache.get_or_load("k", loader).ok());
    EXPECT_EQ(env.executor->pending(), 1u);
  }
  env.executor->run_all();
  EXPECT_EQ(loader.calls(), 1);  // the queued refresh did not run the loader
}

TEST(CacheRefreshTest, RealPoolRefreshes) {
  auto clock = std::make_shared<ManualClock>(from_unix_millis(1'700'000'000'000));
  auto store = std::make_shared<testing::MapStore<std::string, std::string>>(clock);
  auto pool = std::make_shared<ThreadPoolExecutor>(ThreadPoolOptions{.threads = 2});
  CacheOptions<std::string, std::string> o;
  o.ttl = seconds(10);
  o.stale_while_revalidate = seconds(10);
  o.clock = clock;
  o.executor = pool;
  std::latch refreshed(1);
  {
    SCache cache(store, o);
    Loader loader(constant("v1"));
    ASSERT_TRUE(cache.get_or_load("k", loader).ok());
    clock->advance(seconds(12));
    loader.set_answer([&](const std::string&) -> absl::StatusOr<std::string> {
      refreshed.count_down();
      return "v2";
    });
    EXPECT_EQ(*cache.get_or_load("k", loader), "v1");
    refreshed.wait();
  }  // ~Cache waits for the running refresh
  EXPECT_EQ(store->raw("k")->value, "v2");
}

}  // namespace
}  // namespace larder
