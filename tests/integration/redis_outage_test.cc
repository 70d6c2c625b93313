// SPDX-License-Identifier: Apache-2.0
//
// RedisStore when Redis is not well: unreachable, hung (a socket that accepts
// and never answers; a SIGSTOPped redis-server), restarted mid-test. Every
// latency assertion is an upper bound with generous slack (sanitizers, two
// busy cores); no test depends on exact timing otherwise. Breaker behaviour is
// asserted through RedisClientStats (fast_failures: calls refused without
// I/O), not through timing.
#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "larder/cache.h"
#include "larder/internal/mutex.h"
#include "larder/redis.h"
#include "tests/integration/redis_test_util.h"

namespace larder {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::elapsed;
using testing::eventually;
using testing::HungServer;
using testing::RedisServer;

constexpr milliseconds kSlack{2000};  // for sanitizers on two loaded cores

Entry<int> fresh(int v) {
  const TimePoint now = std::chrono::system_clock::now();
  return Entry<int>{v, now + seconds(30), now + seconds(30)};
}

bool is_outage(const absl::Status& s) {
  return s.code() == absl::StatusCode::kUnavailable ||
         s.code() == absl::StatusCode::kDeadlineExceeded;
}

TEST(RedisOutageTest, ConstructionSucceedsAndCallsFailFastWhenNothingListens) {
  RedisOptions o;
  o.port = testing::free_port();  // connection refused
  o.key_prefix = testing::unique_prefix();
  o.breaker_failures = 3;
  o.breaker_probe_interval = milliseconds(50);
  RedisStore<std::string, int> store(o);  // must not throw or block
  std::vector<std::string> keys{"a", "b"};
  for (int i = 0; i < 10; ++i) {
    const milliseconds took = elapsed([&] {
      auto got = store.get("k");
      ASSERT_FALSE(got.ok());
      EXPECT_EQ(got.status().code(), absl::StatusCode::kUnavailable) << got.status();
      EXPECT_FALSE(store.put("k", fresh(1)).ok());
      EXPECT_FALSE(store.get_many(keys).ok());
    });
    EXPECT_LT(took, o.connect_timeout * 3 + kSlack);
  }
  const RedisClientStats st = store.client()->stats();
  EXPECT_TRUE(st.breaker_open);
  EXPECT_EQ(st.breaker_opens, 1u);
  EXPECT_GE(st.fast_failures, 20u);  // backoff and breaker refused without I/O
  EXPECT_LE(st.failures, 3u);        // only the first few touched the network
  EXPECT_EQ(store.counters().errors, 30u);
}

TEST(RedisOutageTest, HungServerTimesOutWithinCommandTimeoutThenBreakerOpens) {
  HungServer hung;
  RedisOptions o;
  o.port = hung.port();
  o.key_prefix = testing::unique_prefix();
  o.command_timeout = milliseconds(50);
  o.connect_timeout = milliseconds(50);
  o.breaker_failures = 2;
  o.breaker_probe_interval = milliseconds(20);
  RedisStore<std::string, int> store(o);
  for (int i = 0; i < 2; ++i) {
    absl::Status s;
    const milliseconds took = elapsed([&] { s = store.get("k").status(); });
    EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << s;
    EXPECT_LT(took, o.connect_timeout + o.command_timeout + kSlack);
  }
  ASSERT_TRUE(store.client()->breaker_open());
  // Open: refused at once, without waiting for a timeout each.
  const std::uint64_t failures = store.client()->stats().failures;
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(store.put("k", fresh(1)).code(), absl::StatusCode::kUnavailable);
  }
  const RedisClientStats st = store.client()->stats();
  EXPECT_EQ(st.failures, failures);
  EXPECT_GE(st.fast_failures, 20u);
  // The probe keeps trying (and timing out) in the background.
  EXPECT_TRUE(eventually([&] { return store.client()->stats().probes >= 2; }));
  EXPECT_TRUE(store.client()->breaker_open());
}

TEST(RedisOutageTest, ConcurrentCallersOnAHungServerAllReturnInBoundedTime) {
  HungServer hung;
  RedisOptions o;
  o.port = hung.port();
  o.key_prefix = testing::unique_prefix();
  o.pool_size = 2;
  o.command_timeout = milliseconds(60);
  o.connect_timeout = milliseconds(60);
  o.borrow_timeout = milliseconds(30);
  o.breaker_failures = 0;  // no breaker: every call must time out by itself
  RedisStore<std::string, int> store(o);
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 3; ++i) {
        absl::Status s;
        const milliseconds took = elapsed([&] { s = store.get("k").status(); });
        EXPECT_TRUE(is_outage(s)) << s;
        EXPECT_LT(took, o.borrow_timeout + o.connect_timeout + o.command_timeout + kSlack);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_LE(store.client()->stats().open_connections, 2u);
}

TEST(RedisOutageTest, StoppedServerTimesOutAndEverythingRecoversAfterContinue) {
  RedisServer server;
  ASSERT_TRUE(server.running());
  RedisOptions o = server.options();
  o.command_timeout = milliseconds(80);
  o.breaker_failures = 3;
  o.breaker_probe_interval = milliseconds(20);
  RedisStore<std::string, int> store(o);
  ASSERT_TRUE(store.put("k", fresh(5)).ok());

  server.pause();  // SIGSTOP: connections stay open, nothing answers
  for (int i = 0; i < 3; ++i) {
    absl::Status s;
    const milliseconds took = elapsed([&] { s = store.get("k").status(); });
    EXPECT_TRUE(is_outage(s)) << s;
    EXPECT_LT(took, o.connect_timeout + o.command_timeout + kSlack);
  }
  EXPECT_TRUE(store.client()->breaker_open());
  EXPECT_EQ(store.get("k").status().code(), absl::StatusCode::kUnavailable);

  server.resume();
  ASSERT_TRUE(eventually([&] { return !store.client()->breaker_open(); }));
  auto got = store.get("k");
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ((*got)->value, 5);
  EXPECT_EQ(store.client()->stats().breaker_closes, 1u);
}

TEST(RedisOutageTest, RestartedServerCostsNoFailedCallWhenItIsAlreadyBack) {
  RedisServer server;
  ASSERT_TRUE(server.running());
  RedisOptions o = server.options();
  RedisStore<std::string, int> store(o);
  ASSERT_TRUE(store.put("k", fresh(1)).ok());
  ASSERT_TRUE(store.put("j", fresh(1)).ok());
  server.stop();
  server.start();  // no persistence: the data is gone, the pooled sockets are dead
  ASSERT_TRUE(server.running());
  auto got = store.get("k");  // the dead pooled connection is noticed before use
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_FALSE(got->has_value());
  EXPECT_TRUE(store.put("k", fresh(2)).ok());
  EXPECT_EQ(store.client()->stats().failures, 0u);
}

TEST(RedisOutageTest, ServerDownThenBackRecoversWithoutHelp) {
  RedisServer server;
  ASSERT_TRUE(server.running());
  RedisOptions o = server.options();
  o.breaker_failures = 2;
  o.breaker_probe_interval = milliseconds(20);
  o.reconnect_backoff_min = milliseconds(5);
  RedisStore<std::string, int> store(o);
  ASSERT_TRUE(store.put("k", fresh(1)).ok());
  server.stop();
  for (int i = 0; i < 5; ++i) {
    absl::Status s;
    const milliseconds took = elapsed([&] { s = store.put("k", fresh(2)); });
    EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
    EXPECT_LT(took, o.connect_timeout + o.command_timeout + kSlack);
  }
  EXPECT_TRUE(store.client()->breaker_open());
  server.start();
  ASSERT_TRUE(server.running());
  ASSERT_TRUE(eventually([&] { return store.put("k", fresh(3)).ok(); }));
  auto got = store.get("k");
  ASSERT_TRUE(got.ok() && got->has_value()) << got.status();
  EXPECT_EQ((*got)->value, 3);
}

TEST(RedisOutageTest, LogHookHearsTheBreakerOpenAndClose) {
  RedisServer server;
  ASSERT_TRUE(server.running());
  internal::Mutex mu;
  std::vector<std::pair<RedisLogLevel, std::string>> lines;
  RedisOptions o = server.options();
  o.breaker_failures = 1;
  o.breaker_probe_interval = milliseconds(10);
  o.log = [&](RedisLogLevel l, std::string_view m) {
    internal::MutexLock lock(&mu);
    lines.emplace_back(l, std::string(m));
  };
  {
    RedisStore<std::string, int> store(o);
    server.stop();
    EXPECT_FALSE(store.get("k").ok());
    EXPECT_TRUE(store.client()->breaker_open());
    server.start();
    ASSERT_TRUE(eventually([&] { return !store.client()->breaker_open(); }));
  }
  internal::MutexLock lock(&mu);
  bool opened = false, closed = false;
  for (const auto& [level, m] : lines) {
    if (m.find("circuit breaker open") != std::string::npos)
      opened = level == RedisLogLevel::kError;
    if (m.find("circuit breaker closed") != std::string::npos) closed = true;
  }
  EXPECT_TRUE(opened);
  EXPECT_TRUE(closed);
}

// The server hangs up while we are still writing: the send() that follows
// gets ECONNRESET or EPIPE, which must be an error Status and never a SIGPIPE
// that kills the process (larder sends with MSG_NOSIGNAL). Which errno comes
// first depends on the kernel's timing, so this guards against crashes more
// than it proves the EPIPE path.
TEST(RedisOutageTest, ServerHangingUpMidWriteIsAnErrorNotSigpipe) {
  RedisServer server({"--proto-max-bulk-len", "1mb"});  // closes on a bigger bulk
  ASSERT_TRUE(server.running());
  RedisOptions o = server.options();
  o.command_timeout = milliseconds(2000);
  RedisStore<std::string, std::string> store(o);
  const TimePoint now = std::chrono::system_clock::now();
  const absl::Status s = store.put(
      "big", Entry<std::string>{std::string(8 << 20, 'x'), now + seconds(9), now + seconds(9)});
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(store.put("small", Entry<std::string>{"x", now + seconds(9), now + seconds(9)}).ok());
}

// ---- A pooled connection the server closed (design essay of
// src/redis_client.cc, part 2): reads are sent unchecked and re-sent once,
// writes check the connection first and are never re-sent. ----

// admin_command: one command on a fresh blocking hiredis connection of the
// test's own (not the client's pool); the reply's integer, or its string
// parsed as one, or -1.
long long admin_command(int port, const std::vector<std::string>& args) {
  redisContext* c = redisConnectWithTimeout("127.0.0.1", port, timeval{5, 0});
  long long out = -1;
  if (c != nullptr && c->err == 0) {
    redisSetTimeout(c, timeval{5, 0});
    std::vector<const char*> argv;
    std::vector<std::size_t> lens;
    for (const std::string& a : args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    auto* r = static_cast<redisReply*>(
        redisCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lens.data()));
    if (r != nullptr && r->type == REDIS_REPLY_INTEGER) out = r->integer;
    if (r != nullptr && r->type == REDIS_REPLY_STRING) {
      out = std::stoll(std::string(r->str, r->len));
    }
    if (r != nullptr) freeReplyObject(r);
  }
  if (c != nullptr) redisFree(c);
  return out;
}

// kill_pool: closes every client connection of the server except the
// caller's (the pool's idle ones); how many it closed.
long long kill_pool(int port) {
  return admin_command(port, {"CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"});
}

// commands_run: how many times the server ran `cmd` (INFO commandstats).
long long commands_run(int port, const std::string& cmd) {
  redisContext* c = redisConnectWithTimeout("127.0.0.1", port, timeval{5, 0});
  long long out = -1;
  if (c != nullptr && c->err == 0) {
    redisSetTimeout(c, timeval{5, 0});
    auto* r = static_cast<redisReply*>(redisCommand(c, "INFO commandstats"));
    if (r != nullptr && r->type == REDIS_REPLY_STRING) {
      const std::string text(r->str, r->len);
      const std::string tag = "cmdstat_" + cmd + ":calls=";
      const std::size_t at = text.find(tag);
      out = at == std::string::npos ? 0 : std::stoll(text.substr(at + tag.size()));
    }
    if (r != nullptr) freeReplyObject(r);
  }
  if (c != nullptr) redisFree(c);
  return out;
}

absl::StatusOr<std::string> get_string(RedisClient& client, const std::string& key) {
  std::string out;
  const std::string_view args[] = {"GET", key};
  absl::Status s = client.command(
      args, [&](std::size_t, RedisReplyRef r) { out = std::string(r.str()); }, "GET");
  if (!s.ok()) return s;
  return out;
}

absl::Status set_string(RedisClient& client, const std::string& key, const std::string& v) {
  const std::string_view args[] = {"SET", key, v};
  absl::Status reply;
  absl::Status s = client.command(
      args, [&](std::size_t, RedisReplyRef r) { reply = r.status("SET"); }, "SET");
  return s.ok() ? reply : s;
}

TEST(RedisOutageTest, ReadOnAPooledConnectionTheServerClosedIsResentOnce) {
  RedisServer server;
  ASSERT_TRUE(server.running());
  RedisOptions o = server.options();
  o.pool_size = 1;
  RedisClient client(o);
  const std::string key = o.key_prefix + "k";
  ASSERT_TRUE(set_string(client, key, "v1").ok());  // one idle pooled connection
  ASSERT_EQ(kill_pool(server.port()), 1);           // the server closes it
  absl::StatusOr<std::string> got = get_string(client, key);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, "v1");
  RedisClientStats st = client.stats();
  EXPECT_EQ(st.retries, 1u);   // sent unchecked, found closed, sent again
  EXPECT_EQ(st.failures, 0u);  // the first try is not a failed call
  EXPECT_EQ(st.dropped, 1u);
  EXPECT_FALSE(st.breaker_open);
  // A pipeline of reads alike; the connection is then healthy again.
  ASSERT_EQ(kill_pool(server.port()), 1);
  const std::string_view get[] = {"GET", key};
  const std::string_view mget[] = {"MGET", key, key};
  const RedisArgs cmds[] = {RedisArgs(get), RedisArgs(mget)};
  std::size_t replies = 0;
  const absl::Status read = client.pipeline(
      cmds, [&](std::size_t, RedisReplyRef) { ++replies; }, "read");
  ASSERT_TRUE(read.ok()) << read;
  EXPECT_EQ(replies, 2u);
  ASSERT_TRUE(get_string(client, key).ok());
  st = client.stats();
  EXPECT_EQ(st.retries, 2u);
  EXPECT_EQ(st.failures, 0u);
}

TEST(RedisOutageTest, WriteOnAPooledConnectionTheServerClosedIsCheckedNotResent) {
  RedisServer server;
  ASSERT_TRUE(server.running());
  RedisOptions o = server.options();
  o.pool_size = 1;
  RedisClient client(o);
  const std::string key = o.key_prefix + "n";
  ASSERT_TRUE(set_string(client, key, "1").ok());
  ASSERT_EQ(kill_pool(server.port()), 1);
  // The idle check finds it closed before anything is sent: no failed call.
  const std::string_view incr[] = {"INCR", key};
  long long n = 0;
  const absl::Status incremented = client.command(
      incr, [&](std::size_t, RedisReplyRef r) { n = r.integer(); }, "INCR");
  ASSERT_TRUE(incremented.ok()) << incremented;
  EXPECT_EQ(n, 2);
  // A pipeline mixing a read and a write is a write.
  ASSERT_EQ(kill_pool(server.port()), 1);
  const std::string_view get[] = {"GET", key};
  const RedisArgs cmds[] = {RedisArgs(get), RedisArgs(incr)};
  const absl::Status mixed = client.pipeline(
      cmds, [](std::size_t, RedisReplyRef) {}, "mixed");
  ASSERT_TRUE(mixed.ok()) << mixed;
  EXPECT_EQ(admin_command(server.port(), {"GET", key}), 3);
  const RedisClientStats st = client.stats();
  EXPECT_EQ(st.retries, 0u);
  EXPECT_EQ(st.failures, 0u);
  EXPECT_EQ(st.dropped, 2u);
}

// The server runs a command and then closes the connection without a byte
// of its reply (the reply is over its output buffer limit): the case where a
// re-send would run the command twice. A read is re-sent once (and the
// second failure is the call's); a write is not re-sent: it ran once.
TEST(RedisOutageTest, CommandTheServerRanThenClosedOnIsResentOnlyIfARead) {
  RedisServer server({"--client-output-buffer-limit", "normal 256kb 256kb 0"});
  ASSERT_TRUE(server.running());
  RedisOptions o = server.options();
  o.pool_size = 1;
  o.breaker_failures = 0;  // never open: the second failure must not hide the third call
  RedisClient client(o);
  const std::string big = o.key_prefix + "big", counter = o.key_prefix + "counter";
  ASSERT_TRUE(set_string(client, big, std::string(1 << 20, 'x')).ok());  // pooled, idle

  const long long gets_before = commands_run(server.port(), "get");
  absl::StatusOr<std::string> got = get_string(client, big);
  EXPECT_EQ(got.status().code(), absl::StatusCode::kUnavailable) << got.status();
  EXPECT_EQ(commands_run(server.port(), "get") - gets_before, 2);  // sent twice, not more
  RedisClientStats st = client.stats();
  EXPECT_EQ(st.retries, 1u);
  EXPECT_EQ(st.failures, 1u);

  ASSERT_TRUE(set_string(client, counter, "0").ok());  // a healthy pooled connection again
  static constexpr std::string_view kScript =
      "redis.call('INCR', KEYS[1]) return string.rep('x', 1048576)";
  const std::string_view eval[] = {"EVAL", kScript, "1", counter};
  const absl::Status s = client.command(
      eval, [](std::size_t, RedisReplyRef) {}, "EVAL");
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_EQ(admin_command(server.port(), {"GET", counter}), 1);  // ran once: not re-sent
  st = client.stats();
  EXPECT_EQ(st.retries, 1u);
  EXPECT_EQ(st.failures, 2u);
}

// The Cache in front of a RedisStore through an outage: it serves from the
// loader, counts store_errors, and goes back to Redis when Redis returns.
TEST(RedisOutageTest, CacheServesFromLoaderDuringOutageAndRecovers) {
  RedisServer server;
  ASSERT_TRUE(server.running());
  RedisOptions o = server.options();
  o.command_timeout = milliseconds(80);
  o.breaker_failures = 2;
  o.breaker_probe_interval = milliseconds(20);
  auto store = std::make_shared<RedisStore<std::string, int>>(o);
  CacheOptions<std::string, int> co;
  co.ttl = seconds(30);
  Cache<std::string, int> cache(store, co);
  std::atomic<int> loads{0};
  auto loader = [&](const std::string& k) {
    loads.fetch_add(1);
    return static_cast<int>(k.size());
  };
  ASSERT_EQ(cache.get_or_load("abc", loader).value(), 3);
  ASSERT_EQ(cache.get_or_load("abc", loader).value(), 3);  // from Redis
  EXPECT_EQ(loads.load(), 1);

  server.stop();
  for (int i = 0; i < 6; ++i) {
    absl::StatusOr<int> v;
    const milliseconds took = elapsed([&] { v = cache.get_or_load("abcd", loader); });
    ASSERT_TRUE(v.ok()) << v.status();
    EXPECT_EQ(*v, 4);
    EXPECT_LT(took, (o.connect_timeout + o.command_timeout) * 2 + kSlack);
  }
  EXPECT_GE(cache.stats().store_errors, 6u);
  EXPECT_TRUE(store->client()->breaker_open());

  server.start();
  ASSERT_TRUE(server.running());
  ASSERT_TRUE(eventually([&] { return !store->client()->breaker_open(); }));
  const int before = loads.load();
  ASSERT_EQ(cache.get_or_load("xyz12", loader).value(), 5);  // loaded and stored again
  ASSERT_EQ(cache.get_or_load("xyz12", loader).value(), 5);  // answered by Redis
  EXPECT_EQ(loads.load(), before + 1);
  auto got = store->get("xyz12");
  ASSERT_TRUE(got.ok() && got->has_value());
}

}  // namespace
}  // namespace larder
