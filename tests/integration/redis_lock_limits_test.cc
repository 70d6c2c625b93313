// SPDX-License-Identifier: Apache-2.0
//
// RedisLock and RedisLoadGuard with durations at their limits (issue 10's
// audit): a wait of milliseconds::max() ("wait forever") or a huge
// retry_interval used to overflow when added to now or scaled to
// microseconds (UBSan in the asan preset aborts on it). The deadline now
// saturates and the pause is capped, so they behave as the words say.
#include <chrono>
#include <latch>
#include <memory>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "gtest/gtest.h"
#include "larder/cache.h"
#include "larder/redis.h"
#include "tests/integration/redis_test_util.h"

namespace larder {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::options_for;

// A client whose key_prefix is cleaned up at the end of the test.
struct ScopedClient {
  explicit ScopedClient(RedisOptions o) : client(std::make_shared<RedisClient>(o)) {}
  ~ScopedClient() { EXPECT_TRUE((RedisStore<std::string, std::string>(client).clear().ok())); }
  std::shared_ptr<RedisClient> client;
};

TEST(RedisLockLimitsTest, UnboundedWaitTakesAFreeLockAndWaitsForAHeldOne) {
  LARDER_REQUIRE_REDIS_OR_SKIP(addr);
  ScopedClient c(options_for(addr));
  RedisLock a(c.client, "job", {.ttl = seconds(5), .wait = milliseconds::max()});
  absl::StatusOr<bool> got = a.lock();
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(*got);

  // Held by a: b waits (without a deadline) until a releases.
  RedisLock b(c.client, "job",
              {.ttl = seconds(5), .wait = milliseconds::max(), .retry_interval = milliseconds(1)});
  std::latch started(1);
  std::thread t([&] {
    started.count_down();
    absl::StatusOr<bool> r = b.lock();
    EXPECT_TRUE(r.ok() && *r) << (r.ok() ? "not acquired" : r.status().ToString());
  });
  started.wait();
  ASSERT_TRUE(a.unlock().ok());
  t.join();  // bounded by the ctest timeout; b's lock() returns once a released
  EXPECT_TRUE(b.held());
}

TEST(RedisLockLimitsTest, HugeRetryIntervalIsCutToTheWait) {
  LARDER_REQUIRE_REDIS_OR_SKIP(addr);
  ScopedClient c(options_for(addr));
  RedisLock holder(c.client, "job");
  ASSERT_TRUE(holder.try_lock().value());
  for (const milliseconds interval : {milliseconds::max(), milliseconds(1'000'000'000'000'000)}) {
    RedisLock waiter(c.client, "job",
                     {.ttl = seconds(5), .wait = milliseconds(30), .retry_interval = interval});
    absl::StatusOr<bool> got;
    const milliseconds took = testing::elapsed([&] { got = waiter.lock(); });
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_FALSE(*got);
    EXPECT_LT(took, milliseconds(30) + seconds(2)) << "the pause is cut to the wait";
  }
}

// Cache + RedisStore + RedisLoadGuard whose wait is milliseconds::max(): the
// cache's guard deadline (now + wait()) saturates instead of overflowing,
// for get_or_load and for get_many's keys another process holds.
TEST(RedisLockLimitsTest, LoadGuardWithUnboundedWaitLoads) {
  LARDER_REQUIRE_REDIS_OR_SKIP(addr);
  ScopedClient c(options_for(addr));
  auto store = std::make_shared<RedisStore<std::string, std::string>>(c.client);
  auto guard = std::make_shared<RedisLoadGuard<std::string>>(
      c.client, RedisLoadGuardOptions{.lock = {.ttl = seconds(5), .wait = milliseconds::max()}});
  EXPECT_EQ(guard->wait(), milliseconds::max());
  CacheOptions<std::string, std::string> o;
  o.ttl = seconds(10);
  o.load_guard = guard;
  Cache<std::string, std::string> cache(store, o);
  int loads = 0;
  absl::StatusOr<std::string> v = cache.get_or_load("k", [&](const std::string& k) {
    ++loads;
    return "v:" + k;
  });
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(*v, "v:k");

  // "c" is held by another process whose lease runs out after 100 ms without
  // a value: get_many loads a and b, waits for c (deadline now + wait()), sees
  // the lease gone, wins it and loads c itself.
  RedisLock other(c.client, "lock:c", {.ttl = milliseconds(100)});
  ASSERT_TRUE(other.try_lock().value());
  const std::vector<std::string> keys{"a", "b", "c"};
  auto many = cache.get_many(std::span<const std::string>(keys),
                             [&](std::span<const std::string> ks)
                                 -> absl::StatusOr<absl::flat_hash_map<std::string, std::string>> {
                               absl::flat_hash_map<std::string, std::string> m;
                               for (const auto& k : ks) m[k] = "v:" + k;
                               loads += static_cast<int>(ks.size());
                               return m;
                             });
  ASSERT_TRUE(many.ok()) << many.status();
  EXPECT_EQ(many->size(), 3u);
  EXPECT_EQ(many->at("c"), "v:c");
  EXPECT_EQ(loads, 4);
  (void)other.unlock();  // expired already: kAborted, as documented
}

}  // namespace
}  // namespace larder
