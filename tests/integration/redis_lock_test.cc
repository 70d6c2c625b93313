// SPDX-License-Identifier: Apache-2.0
//
// RedisLock and RedisLoadGuard against a real redis-server, and cross-process
// single-flight: several processes (redis_singleflight_helper) miss the same
// key at once through Cache + RedisStore + RedisLoadGuard; exactly one loads.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <latch>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "larder/cache.h"
#include "larder/redis.h"
#include "tests/integration/redis_test_util.h"

namespace larder {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::options_for;

std::string raw(RedisClient& c, std::vector<std::string> args) {
  std::vector<std::string_view> v(args.begin(), args.end());
  std::string out;
  absl::Status s = c.command(
      v,
      [&](std::size_t, RedisReplyRef r) {
        out = r.type() == RedisReplyType::kInteger ? std::to_string(r.integer())
              : r.type() == RedisReplyType::kNil   ? "(nil)"
                                                   : std::string(r.str());
      },
      "raw");
  EXPECT_TRUE(s.ok()) << s;
  return out;
}

// A client whose key_prefix is cleaned up at the end of the test.
struct ScopedClient {
  explicit ScopedClient(RedisOptions o) : client(std::make_shared<RedisClient>(o)) {}
  ~ScopedClient() { EXPECT_TRUE((RedisStore<std::string, std::string>(client).clear().ok())); }
  std::shared_ptr<RedisClient> client;
};

TEST(RedisLockTest, OneHolderAtATimeAndUnlockFreesIt) {
  LARDER_REQUIRE_REDIS_OR_SKIP(addr);
  ScopedClient c(options_for(addr));
  RedisLock a(c.client, "job");
  RedisLock b(c.client, "job");
  ASSERT_EQ(a.try_lock().value(), true);
  EXPECT_TRUE(a.held());
  EXPECT_EQ(a.try_lock().value(), true);  // already ours
  EXPECT_EQ(b.try_lock().value(), false);
  EXPECT_FALSE(b.held());
  EXPECT_EQ(raw(*c.client, {"GET", a.key()}), a.token());
  const long long pttl = std::stoll(raw(*c.client, {"PTTL", a.key()}));
  EXPECT_GT(pttl, 0);
  EXPECT_LE(pttl, 5000);  // RedisLockOptions::ttl
  EXPECT_TRUE(RedisLock::is_locked(*c.client, "job").value());
  ASSERT_TRUE(a.unlock().ok());
  EXPECT_FALSE(a.held());
  EXPECT_FALSE(RedisLock::is_locked(*c.client, "job").value());
  EXPECT_EQ(b.try_lock().value(), true);
  EXPECT_NE(b.token(), a.token());
}

TEST(RedisLockTest, ReleaseAndExtendTouchOnlyTheirOwnToken) {
  LARDER_REQUIRE_REDIS_OR_SKIP(addr);
  ScopedClient c(options_for(addr));
  RedisLock a(c.client, "job", {.ttl = seconds(10)});
  RedisLock b(c.client, "job", {.ttl = seconds(10)});
  ASSERT_TRUE(a.try_lock().value());
  // a's lease "expires" (deleted here, so the test does not wait) and b takes the key.
  raw(*c.client, {"DEL", a.key()});
  ASSERT_TRUE(b.try_lock().value());
  EXPECT_EQ(a.extend(seconds(20)).value(), false);  // not a's any more: lost, untouched
  EXPECT_FALSE(a.held());
  EXPECT_LE(std::stoll(raw(*c.client, {"PTTL", b.key()})), 10'000);
  ASSERT_TRUE(a.try_lock().ok());  // fails: b holds it
  EXPECT_FALSE(a.held());
  // And a stale release: force a to believe it holds an old token.
  RedisLock stale(c.client, "job");
  raw(*c.client, {"DEL", b.key()});
  ASSERT_TRUE(stale.try_lock().value());
  raw(*c.client, {"SET", stale.key(), "someone-else"});
  EXPECT_EQ(stale.unlock().code(), absl::StatusCode::kAborted);
  EXPECT_EQ(raw(*c.client, {"GET", stale.key()}), "someone-else");  // not deleted

  RedisLock d(c.client, "other", {.ttl = seconds(1)});
  ASSERT_TRUE(d.try_lock().value());
  EXPECT_TRUE(d.extend(seconds(30)).value());
  EXPECT_GT(std::stoll(raw(*c.client, {"PTTL", d.key()})), 20'000);
}

TEST(RedisLockTest, LockWaitsForTheHolderAndGivesUpAfterWait) {
  LARDER_REQUIRE_REDIS_OR_SKIP(addr);
  ScopedClient c(options_for(addr));
  RedisLock holder(c.client, "job");
  ASSERT_TRUE(holder.try_lock().value());
  {
    RedisLock waiter(c.client, "job", {.ttl = seconds(5), .wait = milliseconds(30)});
    absl::StatusOr<bool> got;
    const milliseconds took = testing::elapsed([&] { got = waiter.lock(); });
    ASSERT_TRUE(got.ok());
    EXPECT_FALSE(*got);
    EXPECT_LT(took, milliseconds(30) + seconds(2));
  }
  RedisLock waiter(c.client, "job", {.ttl = seconds(5), .wait = seconds(30)});
  std::latch waiting(1);
  std::thread t([&] {
    waiting.count_down();
    absl::StatusOr<bool> got = waiter.lock();
    EXPECT_TRUE(got.ok() && *got);
  });
  waiting.wait();
  ASSERT_TRUE(holder.unlock().ok());
  t.join();
  EXPECT_TRUE(waiter.held());
}

TEST(RedisLockTest, DestructorReleases) {
  LARDER_REQUIRE_REDIS_OR_SKIP(addr);
  ScopedClient c(options_for(addr));
  {
    RedisLock a(c.client, "job");
    ASSERT_TRUE(a.try_lock().value());
    EXPECT_TRUE(RedisLock::is_locked(*c.client, "job").value());
  }
  EXPECT_FALSE(RedisLock::is_locked(*c.client, "job").value());
}

TEST(RedisLockTest, ErrorsWhenRedisIsDown) {
  RedisOptions o;
  o.port = testing::free_port();
  auto client = std::make_shared<RedisClient>(o);
  RedisLock a(client, "job");
  EXPECT_EQ(a.try_lock().status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(a.lock().status().code(), absl::StatusCode::kUnavailable);
  RedisLoadGuard<std::string> guard(client);
  EXPECT_FALSE(guard.try_acquire("k").ok());
  EXPECT_FALSE(guard.is_held("k").ok());
}

TEST(RedisLoadGuardTest, LeaseExcludesAndReleasesOnDestruction) {
  LARDER_REQUIRE_REDIS_OR_SKIP(addr);
  ScopedClient c(options_for(addr));
  RedisLoadGuard<int> guard(c.client, {.lock = {.ttl = seconds(5), .wait = milliseconds(700)},
                                       .poll_interval = milliseconds(3)});
  EXPECT_EQ(guard.wait(), milliseconds(700));
  EXPECT_EQ(guard.poll_interval(), milliseconds(3));
  auto lease = guard.try_acquire(42);
  ASSERT_TRUE(lease.ok());
  ASSERT_NE(*lease, nullptr);
  auto second = guard.try_acquire(42);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(*second, nullptr);
  EXPECT_TRUE(guard.is_held(42).value());
  EXPECT_FALSE(guard.is_held(43).value());
  lease->reset();
  EXPECT_FALSE(guard.is_held(42).value());
}

// Several processes miss one key at once; the loader (in each process)
// records its calls with INCR in Redis; exactly one call happens.
TEST(RedisLoadGuardTest, CrossProcessSingleFlightLoadsOnce) {
  LARDER_REQUIRE_REDIS_OR_SKIP(addr);
  const std::string helper =
      (std::filesystem::read_symlink("/proc/self/exe").parent_path() / "redis_singleflight_helper")
          .string();
  ASSERT_TRUE(std::filesystem::exists(helper)) << helper;
  const std::string prefix = testing::unique_prefix();
  ScopedClient c(options_for(addr, prefix));

  int start[2];
  ASSERT_EQ(::pipe(start), 0);
  constexpr int kProcs = 5;
  std::vector<pid_t> pids;
  const std::string port = std::to_string(addr.port);
  for (int i = 0; i < kProcs; ++i) {
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::dup2(start[0], 0);
      ::close(start[0]);
      ::close(start[1]);
      ::execl(helper.c_str(), helper.c_str(), addr.host.c_str(), port.c_str(), prefix.c_str(),
              "the-key", static_cast<char*>(nullptr));
      ::_exit(127);
    }
    pids.push_back(pid);
  }
  ::close(start[0]);
  ::close(start[1]);  // go: every helper's read() sees EOF
  int ok = 0;
  for (pid_t pid : pids) {
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) ++ok;
  }
  EXPECT_EQ(ok, kProcs);
  EXPECT_EQ(raw(*c.client, {"GET", prefix + "loads"}), "1");
}

}  // namespace
}  // namespace larder
