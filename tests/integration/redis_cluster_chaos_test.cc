// SPDX-License-Identifier: Apache-2.0
//
// Topology changes under load, on private topologies (their own processes
// and ports, so tests running in parallel on the shared cluster are never
// disturbed): slots resharded back and forth while threads read and write;
// CLUSTER FAILOVER and kill -9 of a master; SENTINEL FAILOVER.
//
// What is asserted:
//   * resharding: no call fails, no call returns a wrong value, every call
//     ends inside its deadline (connect + command + borrow timeouts);
//   * failover: every call fails fast or succeeds (none outlives its
//     deadline), and after the change every key works again with no user
//     action within the documented bound: cluster 10 s (2.5 x node-timeout
//     + 2 s = 7 s expected), Sentinel 5 s (down-after + 2 s... for a manual
//     failover, about 2 s: the sentinels' agreement plus our 1 s timer).
#include <atomic>
#include <chrono>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "larder/internal/mutex.h"
#include "larder/redis.h"
#include "tests/integration/redis_cluster_util.h"
#include "tests/testing/testing.h"

namespace larder {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using Steady = std::chrono::steady_clock;
using Store = RedisStore<std::string, std::string>;
using testing::cli;
using testing::cli_line;
using testing::PrivateCluster;
using testing::PrivateSentinel;

Entry<std::string> entry(std::string v) {
  const auto now = std::chrono::system_clock::now();
  return Entry<std::string>{std::move(v), now + std::chrono::minutes(5),
                            now + std::chrono::minutes(10)};
}

RedisOptions chaos_options() {
  RedisOptions o;
  o.key_prefix = "chaos:";
  o.connect_timeout = milliseconds(1000);
  o.command_timeout = milliseconds(2000);
  o.borrow_timeout = milliseconds(1000);
  o.breaker_probe_interval = milliseconds(100);
  o.max_redirects = 8;
  return o;
}

// Load: threads, each owning its keys, writing versions and checking that
// reads return the last version written. Records failures, wrong values,
// and the slowest call.
class Load {
 public:
  // Failures are counted, never fatal here: each test decides what it allows.
  Load(std::shared_ptr<Store> store, int threads, int keys_per_thread) : store_(std::move(store)) {
    for (int t = 0; t < threads; ++t) {
      workers_.emplace_back([this, t, keys_per_thread] { run(t, keys_per_thread); });
    }
  }
  ~Load() { stop(); }
  void stop() {
    stop_.store(true);
    for (auto& w : workers_) {
      if (w.joinable()) w.join();
    }
  }
  std::atomic<std::uint64_t> ops{0}, failures{0}, wrong{0};
  std::atomic<long long> slowest_ms{0};
  std::atomic<long long> last_failure_ms{0};  // since start, of the last failed call
  Steady::time_point start = Steady::now();
  internal::Mutex mu;
  std::string first_failure ABSL_GUARDED_BY(mu);

 private:
  void note(Steady::time_point t0, const absl::Status& s) {
    const auto now = Steady::now();
    const long long ms = std::chrono::duration_cast<milliseconds>(now - t0).count();
    long long cur = slowest_ms.load();
    while (ms > cur && !slowest_ms.compare_exchange_weak(cur, ms)) {
    }
    ops.fetch_add(1);
    if (!s.ok()) {
      failures.fetch_add(1);
      last_failure_ms.store(std::chrono::duration_cast<milliseconds>(now - start).count());
      internal::MutexLock l(&mu);
      if (first_failure.empty()) first_failure = s.ToString();
    }
  }
  void run(int t, int n) {
    std::mt19937 rng(static_cast<unsigned>(t) * 7919u + 1);
    std::vector<std::string> keys;
    std::vector<int> version(static_cast<std::size_t>(n), 0);
    for (int i = 0; i < n; ++i) keys.push_back("t" + std::to_string(t) + ":k" + std::to_string(i));
    // Seed every key (retrying: the topology may be settling).
    for (int i = 0; i < n && !stop_.load(); ++i) {
      while (!stop_.load() && !store_->put(keys[static_cast<std::size_t>(i)], entry("0")).ok()) {
        std::this_thread::sleep_for(milliseconds(10));
      }
    }
    seeded_.fetch_add(1);
    while (!stop_.load()) {
      const int op = static_cast<int>(rng() % 3);
      const std::size_t i = rng() % static_cast<std::size_t>(n);
      const auto t0 = Steady::now();
      if (op == 0) {
        const int v = version[i] + 1;
        absl::Status s = store_->put(keys[i], entry(std::to_string(v)));
        note(t0, s);
        // A failed put may or may not have landed: accept either next.
        version[i] = s.ok() ? v : -v;
      } else if (op == 1) {
        auto r = store_->get(keys[i]);
        note(t0, r.status());
        if (r.ok()) check(version[i], *r);
      } else {
        std::vector<std::string> batch;
        std::vector<std::size_t> idx;
        for (int j = 0; j < 20; ++j) {
          idx.push_back(rng() % static_cast<std::size_t>(n));
          batch.push_back(keys[idx.back()]);
        }
        auto r = store_->get_many(batch);
        note(t0, r.status());
        if (r.ok()) {
          for (std::size_t j = 0; j < idx.size(); ++j) check(version[idx[j]], (*r)[j]);
        }
      }
    }
  }
  void check(int& expected, const std::optional<Entry<std::string>>& got) {
    if (!got.has_value()) {
      wrong.fetch_add(1);
      return;
    }
    const int v = std::stoi(got->value);
    if (expected >= 0) {
      if (v != expected) wrong.fetch_add(1);
    } else if (v != -expected && v != -expected - 1) {
      wrong.fetch_add(1);
    } else {
      expected = v;  // now known
    }
  }

 public:
  bool wait_seeded(int threads, std::chrono::milliseconds limit) {
    return testing::wait_until([&] { return seeded_.load() >= threads; }, limit);
  }

 private:
  std::shared_ptr<Store> store_;
  std::atomic<bool> stop_{false};
  std::atomic<int> seeded_{0};
  std::vector<std::thread> workers_;
};

// A call's own bound: connect + command + borrow, plus scheduling slack for
// sanitizer builds on two loaded cores.
constexpr long long kCallBoundMs = 1000 + 2000 + 1000 + 1500;

class RedisClusterChaosTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (testing::env_list("LARDER_TEST_REDIS_CLUSTER").empty() && !testing::redis_required())
      return;
    cluster_ = new PrivateCluster();
  }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }
  void SetUp() override {
    if (cluster_ == nullptr)
      GTEST_SKIP() << "no Redis Cluster tests requested (LARDER_TEST_REDIS_CLUSTER unset)";
    if (!cluster_->wait_healthy(seconds(30))) {
      // Redis left the previous test's topology unhealthy (wait_healthy
      // printed why; seen once in 17 tsan runs, 60 s after a manual
      // failover that had completed). These tests are about the client, so
      // start again from a fresh cluster rather than fail every test after.
      std::fprintf(stderr, "starting a fresh private cluster\n");
      delete cluster_;
      cluster_ = new PrivateCluster();
      ASSERT_FALSE(::testing::Test::HasFailure());
    }
  }
  static PrivateCluster* cluster_;
};
PrivateCluster* RedisClusterChaosTest::cluster_ = nullptr;

TEST_F(RedisClusterChaosTest, ReshardingUnderLoadLosesNothing) {
  RedisOptions o = chaos_options();
  o.cluster_nodes = cluster_->seeds();
  auto store = std::make_shared<Store>(o);
  // Masters at creation: nodes 0, 1, 2.
  const std::string a = cluster_->id(0), b = cluster_->id(1);
  ASSERT_FALSE(a.empty());
  constexpr int kThreads = 3;
  Load load(store, kThreads, 300);
  ASSERT_TRUE(load.wait_seeded(kThreads, seconds(30)));
  const std::string host = "127.0.0.1:" + std::to_string(cluster_->port(0));
  for (int round = 0; round < 2; ++round) {
    // redis-cli refuses to reshard until every node agrees on the slot map
    // (after the previous round the gossip may still be on its way).
    ASSERT_TRUE(testing::eventually(
        [&] {
          int check = 0;
          (void)testing::sh("redis-cli --cluster check " + host, &check);
          return check == 0;
        },
        seconds(30)))
        << "the cluster's nodes never agreed on the slot map before round " << round;
    int st = 0;
    const std::string out =
        testing::sh("redis-cli --cluster reshard " + host + " --cluster-from " +
                        (round % 2 ? b : a) + " --cluster-to " + (round % 2 ? a : b) +
                        " --cluster-slots 1000 --cluster-yes --cluster-pipeline 10",
                    &st);
    ASSERT_EQ(st, 0) << "reshard round " << round << ", its output ends:\n"
                     << out.substr(out.size() > 2000 ? out.size() - 2000 : 0);
  }
  load.stop();
  const RedisClientStats cs = store->client()->stats();
  {
    internal::MutexLock l(&load.mu);
    EXPECT_EQ(load.failures.load(), 0u) << load.first_failure;
  }
  EXPECT_EQ(load.wrong.load(), 0u);
  EXPECT_LE(load.slowest_ms.load(), kCallBoundMs);
  EXPECT_GT(load.ops.load(), 100u);
  EXPECT_GT(cs.moved + cs.asks, 0u) << "the load never met a moved slot";
  std::printf("resharding: %llu ops, slowest %lld ms, moved %llu, ask %llu, tryagain %llu\n",
              static_cast<unsigned long long>(load.ops.load()), load.slowest_ms.load(),
              static_cast<unsigned long long>(cs.moved), static_cast<unsigned long long>(cs.asks),
              static_cast<unsigned long long>(cs.tryagains));
}

// recovered: every key of the store reads and writes again within `limit`.
bool recovered(Store& store, std::chrono::milliseconds limit) {
  std::vector<std::string> keys;
  for (int i = 0; i < 100; ++i) keys.push_back("probe" + std::to_string(i));
  return testing::wait_until(
      [&] {
        std::vector<std::pair<std::string, Entry<std::string>>> items;
        for (const auto& k : keys) items.emplace_back(k, entry("x"));
        return store.put_many(items).ok() && store.get_many(keys).ok();
      },
      limit);
}

TEST_F(RedisClusterChaosTest, ManualFailoverUnderLoad) {
  RedisOptions o = chaos_options();
  o.cluster_nodes = cluster_->seeds();
  auto store = std::make_shared<Store>(o);
  int master = -1;
  for (int i = 0; i < 6 && master < 0; ++i) {
    if (cluster_->is_master(i) && cluster_->replica_of(i) >= 0) master = i;
  }
  ASSERT_GE(master, 0);
  const int replica = cluster_->replica_of(master);
  Load load(store, 2, 200);
  ASSERT_TRUE(load.wait_seeded(2, seconds(30)));
  bool promoted = false;
  for (int attempt = 0; attempt < 2 && !promoted; ++attempt) {
    cli(cluster_->port(replica), "cluster failover");
    promoted = testing::wait_until([&] { return cluster_->is_master(replica); }, seconds(6));
  }
  ASSERT_TRUE(promoted);
  const auto t0 = Steady::now();
  EXPECT_TRUE(recovered(*store, seconds(10)));
  const auto took = std::chrono::duration_cast<milliseconds>(Steady::now() - t0).count();
  load.stop();
  EXPECT_EQ(load.wrong.load(), 0u);
  EXPECT_LE(load.slowest_ms.load(), kCallBoundMs);
  std::printf("manual failover: %llu ops, %llu failed, slowest %lld ms, recovered in %lld ms\n",
              static_cast<unsigned long long>(load.ops.load()),
              static_cast<unsigned long long>(load.failures.load()), load.slowest_ms.load(),
              static_cast<long long>(took));
  ASSERT_TRUE(cluster_->wait_healthy(seconds(30)));
}

TEST_F(RedisClusterChaosTest, KilledMasterUnderLoadRecoversWithinBound) {
  RedisOptions o = chaos_options();
  o.cluster_nodes = cluster_->seeds();
  auto store = std::make_shared<Store>(o);
  int master = -1;
  for (int i = 0; i < 6 && master < 0; ++i) {
    if (cluster_->is_master(i) && cluster_->replica_of(i) >= 0) master = i;
  }
  ASSERT_GE(master, 0);
  const int replica = cluster_->replica_of(master);
  Load load(store, 2, 200);
  ASSERT_TRUE(load.wait_seeded(2, seconds(30)));
  const auto killed_at = Steady::now();
  cluster_->kill(master);
  // Recovery: the replica is promoted (node-timeout 2 s + election) and the
  // client's refresh finds it; no user action.
  EXPECT_TRUE(recovered(*store, seconds(10)));
  const auto took = std::chrono::duration_cast<milliseconds>(Steady::now() - killed_at).count();
  // Then a while of clean operation: every call succeeds again. A call each
  // load thread had already started when recovery was observed may still
  // fail (seen once under TSan); a client still failing would fail hundreds
  // of calls in this window.
  const auto failures_then = load.failures.load();
  std::this_thread::sleep_for(milliseconds(500));  // a window of load, not a wait for an event
  load.stop();
  EXPECT_LE(load.failures.load(), failures_then + 2) << "calls still failing after recovery";
  EXPECT_TRUE(cluster_->is_master(replica));
  EXPECT_LE(load.slowest_ms.load(), kCallBoundMs) << "a call hung";
  std::printf(
      "kill -9 master: %llu ops, %llu failed (fast), slowest %lld ms, recovered in %lld ms\n",
      static_cast<unsigned long long>(load.ops.load()),
      static_cast<unsigned long long>(load.failures.load()), load.slowest_ms.load(),
      static_cast<long long>(took));
  cluster_->restart(master);  // rejoins as a replica
  EXPECT_TRUE(cluster_->wait_healthy(seconds(30)));
}

// A slot with no master (deleted on every node, with full coverage off so
// the rest of the cluster keeps serving): clear() fails with kUnavailable
// instead of reporting OK while that slot's keys stay behind. Then the slot
// is assigned back and clear() succeeds. Last in the suite: it changes the
// shared private cluster's slots and puts them back.
TEST_F(RedisClusterChaosTest, ClearFailsWhileASlotHasNoMaster) {
  RedisOptions o = chaos_options();
  o.key_prefix = "clear:";
  o.cluster_nodes = cluster_->seeds();
  Store store(o);
  ASSERT_TRUE(store.put("k", entry("v")).ok());
  const std::string slot = cli_line(cluster_->port(0), "cluster keyslot clear:k");
  ASSERT_FALSE(slot.empty());
  int owner = -1;
  for (int i = 0; i < 6 && owner < 0; ++i) {
    if (cluster_->is_master(i) &&
        std::atoi(cli(cluster_->port(i), "cluster countkeysinslot " + slot).c_str()) > 0) {
      owner = i;
    }
  }
  ASSERT_GE(owner, 0);
  for (int i = 0; i < 6; ++i) {
    cli(cluster_->port(i), "config set cluster-require-full-coverage no");
    cli(cluster_->port(i), "cluster delslots " + slot);
  }
  // The client's map still names the owner until a reply tells it
  // otherwise (the owner refuses the UNLINK: CLUSTERDOWN), then it refreshes.
  absl::Status s = store.clear();
  for (int i = 0; i < 5 && s.message().find("no known master") == std::string_view::npos; ++i) {
    EXPECT_FALSE(s.ok());
    s = store.clear();
  }
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_NE(s.message().find("1 of 16384 cluster slots have no known master"),
            std::string_view::npos)
      << s;
  // The key is still there: nothing claimed it was cleared. (DBSIZE: the
  // owner refuses EXISTS for a slot it no longer serves.)
  EXPECT_EQ(cli(cluster_->port(owner), "dbsize").rfind("0", 0), std::string::npos);

  cli(cluster_->port(owner), "cluster addslots " + slot);
  EXPECT_TRUE(testing::wait_until(
      [&] {
        for (int i = 0; i < 6; ++i) {
          if (cli(cluster_->port(i), "cluster info").find("cluster_slots_assigned:16384") ==
              std::string::npos) {
            return false;
          }
        }
        return true;
      },
      seconds(20)));
  for (int i = 0; i < 6; ++i)
    cli(cluster_->port(i), "config set cluster-require-full-coverage yes");
  const absl::Status again = store.clear();
  EXPECT_TRUE(again.ok()) << again;
  EXPECT_EQ(cli(cluster_->port(owner), "exists clear:k").rfind("0", 0), 0u);
  EXPECT_TRUE(cluster_->wait_healthy(seconds(30)));
}

TEST(RedisSentinelChaosTest, SentinelFailoverUnderLoad) {
  if (testing::env_list("LARDER_TEST_REDIS_SENTINELS").empty()) {
    if (testing::redis_required())
      FAIL() << "LARDER_TEST_REQUIRE_REDIS=1 but LARDER_TEST_REDIS_SENTINELS unset";
    GTEST_SKIP() << "no Sentinel tests requested (LARDER_TEST_REDIS_SENTINELS unset)";
  }
  PrivateSentinel s;
  ASSERT_FALSE(::testing::Test::HasFailure());
  RedisOptions o = chaos_options();
  o.sentinels = s.sentinels();
  o.sentinel_master = "mymaster";
  auto store = std::make_shared<Store>(o);
  const int old_master = s.master_port();
  ASSERT_EQ(old_master, s.port(0));
  Load load(store, 2, 100);
  ASSERT_TRUE(load.wait_seeded(2, seconds(30)));
  cli(s.port(2), "sentinel failover mymaster");
  const auto t0 = Steady::now();
  ASSERT_TRUE(testing::wait_until([&] { return s.master_port() == s.port(1); }, seconds(10)));
  // Recovered: the client now writes to the new master (never to the demoted one).
  const bool ok = testing::wait_until(
      [&] {
        if (!store->put("where", entry("new")).ok()) return false;
        return cli(s.port(1), "role").rfind("master", 0) == 0 &&
               cli(s.port(1), "get chaos:where").find("new") != std::string::npos &&
               store->client()->stats().master_switches > 0;
      },
      seconds(5));
  EXPECT_TRUE(ok);
  const auto took = std::chrono::duration_cast<milliseconds>(Steady::now() - t0).count();
  load.stop();
  EXPECT_LE(load.slowest_ms.load(), kCallBoundMs) << "a call hung";
  EXPECT_GE(store->client()->stats().master_switches, 1u);
  std::printf("sentinel failover: %llu ops, %llu failed, slowest %lld ms, recovered in %lld ms\n",
              static_cast<unsigned long long>(load.ops.load()),
              static_cast<unsigned long long>(load.failures.load()), load.slowest_ms.load(),
              static_cast<long long>(took));
}

}  // namespace
}  // namespace larder
