// SPDX-License-Identifier: Apache-2.0
//
// RedisClient over Redis Cluster and Sentinel, on the shared topologies
// scripts/test.sh starts (read-only use of the topology: nothing here moves
// slots or kills nodes; redis_cluster_chaos_test.cc does, on private ones):
// hash slots, option checks, the Store contract over both, batches split
// per node, clear() over every master, locks and cross-process single-flight,
// two TieredStores kept coherent through the bus.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "larder/local_store.h"
#include "larder/redis.h"
#include "larder/tiered_store.h"
#include "tests/integration/redis_cluster_util.h"
#include "tests/testing/store_contract.h"

namespace larder::testing {
namespace {

std::shared_ptr<Store<std::string, std::string>> make_store(RedisOptions o,
                                                            std::shared_ptr<Clock> clock) {
  o.clock = std::move(clock);
  return std::shared_ptr<RedisStore<std::string, std::string>>(
      new RedisStore<std::string, std::string>(o), [](RedisStore<std::string, std::string>* s) {
        EXPECT_TRUE(s->clear().ok());
        delete s;
      });
}

void skip_without(const char* var) {
  if (!env_list(var).empty()) return;
  if (redis_required()) ADD_FAILURE() << "LARDER_TEST_REQUIRE_REDIS=1 but " << var << " unset";
  GTEST_SKIP() << "no " << var << " (scripts/test.sh sets it)";
}
bool have_or_fail(const char* var) {
  skip_without(var);
  return !::testing::Test::IsSkipped() && !::testing::Test::HasFailure();
}

struct ClusterStoreFactory {
  static std::shared_ptr<Store<std::string, std::string>> make(std::shared_ptr<Clock> clock) {
    if (!have_or_fail("LARDER_TEST_REDIS_CLUSTER")) return nullptr;
    return make_store(cluster_options(env_list("LARDER_TEST_REDIS_CLUSTER")), std::move(clock));
  }
};
struct SentinelStoreFactory {
  static std::shared_ptr<Store<std::string, std::string>> make(std::shared_ptr<Clock> clock) {
    if (!have_or_fail("LARDER_TEST_REDIS_SENTINELS")) return nullptr;
    return make_store(sentinel_options(env_list("LARDER_TEST_REDIS_SENTINELS"),
                                       env_or("LARDER_TEST_REDIS_SENTINEL_MASTER", "mymaster")),
                      std::move(clock));
  }
};
using Factories = ::testing::Types<ClusterStoreFactory, SentinelStoreFactory>;
INSTANTIATE_TYPED_TEST_SUITE_P(RedisTopologies, StoreContractTest, Factories);

}  // namespace
}  // namespace larder::testing

namespace larder {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::cluster_options;
using testing::env_list;
using testing::env_or;
using testing::sentinel_options;
using testing::unique_prefix;
using Store = RedisStore<std::string, std::string>;

Entry<std::string> entry(std::string v) {
  const auto now = std::chrono::system_clock::now();
  return Entry<std::string>{std::move(v), now + std::chrono::minutes(1),
                            now + std::chrono::minutes(2)};
}

// The vectors of the design brief, checked against CLUSTER KEYSLOT.
TEST(RedisClusterSlotTest, MatchesRedis) {
  EXPECT_EQ(internal::redis_key_slot("123456789"), 0x31C3 & 16383);
  EXPECT_EQ(internal::redis_key_slot("foo"), 12182);
  EXPECT_EQ(internal::redis_key_slot("bar"), 5061);
  EXPECT_EQ(internal::redis_key_slot("hello"), 866);
  EXPECT_EQ(internal::redis_key_slot("somekey"), 11058);
  EXPECT_EQ(internal::redis_key_slot(""), 0);
  EXPECT_EQ(internal::redis_key_slot(std::string_view("\xFF\x00", 2)), 1023);
  EXPECT_EQ(internal::redis_key_slot("{user1000}.following"), 3443);
  EXPECT_EQ(internal::redis_key_slot("{user1000}.followers"), 3443);
  EXPECT_EQ(internal::redis_key_slot("user1000"), 3443);
  EXPECT_EQ(internal::redis_key_slot("{user1}.following"), 8106);
  EXPECT_EQ(internal::redis_key_slot("foo{}{bar}"), 8363);
  EXPECT_EQ(internal::redis_key_slot("foo{{bar}}zap"), 4015);
  EXPECT_EQ(internal::redis_key_slot("foo{bar}{zap}"), 5061);
  EXPECT_EQ(internal::redis_key_slot("{}"), 15257);
}

TEST(RedisClusterOptionsTest, RefusesPrefixWithHashTagAndOtherConflicts) {
  RedisOptions o;
  o.cluster_nodes = {"127.0.0.1:7000"};
  o.key_prefix = "{users}:";
  EXPECT_THROW(RedisClient{o}, std::invalid_argument);
  o.key_prefix = "{}users:";  // neutralises user braces: allowed
  EXPECT_NO_THROW(RedisClient{o});
  o.key_prefix = "users:";
  o.db = 1;
  EXPECT_THROW(RedisClient{o}, std::invalid_argument);
  o.db = 0;
  o.sentinels = {"127.0.0.1:26379"};
  o.sentinel_master = "m";
  EXPECT_THROW(RedisClient{o}, std::invalid_argument);
  RedisOptions s;
  s.sentinels = {"127.0.0.1:26379"};
  EXPECT_THROW(RedisClient{s}, std::invalid_argument);  // no sentinel_master
  RedisOptions bad;
  bad.cluster_nodes = {"no-port"};
  EXPECT_THROW(RedisClient{bad}, std::invalid_argument);
}

class RedisClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    nodes_ = env_list("LARDER_TEST_REDIS_CLUSTER");
    if (nodes_.empty()) {
      if (testing::redis_required())
        FAIL() << "LARDER_TEST_REQUIRE_REDIS=1 but LARDER_TEST_REDIS_CLUSTER unset";
      GTEST_SKIP() << "no Redis Cluster: set LARDER_TEST_REDIS_CLUSTER (scripts/test.sh does)";
    }
  }
  std::vector<std::string> nodes_;
};

TEST_F(RedisClusterTest, BatchesSpanEveryNodeInCallerOrder) {
  const std::string prefix = unique_prefix();
  auto store = std::make_shared<Store>(cluster_options(nodes_, prefix));
  constexpr int kN = 300;
  std::vector<std::pair<std::string, Entry<std::string>>> items;
  std::vector<std::string> keys;
  std::set<std::uint16_t> slots;
  for (int i = 0; i < kN; ++i) {
    keys.push_back("k" + std::to_string(i));
    items.emplace_back(keys.back(), entry("v" + std::to_string(i)));
    slots.insert(internal::redis_key_slot(prefix + keys.back()));
  }
  EXPECT_GT(slots.size(), 250u);  // really spread
  ASSERT_TRUE(store->put_many(items).ok());
  std::vector<std::string> asked = keys;
  asked.push_back("absent");
  std::reverse(asked.begin(), asked.end());
  auto got = store->get_many(asked);
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->size(), asked.size());
  EXPECT_FALSE((*got)[0].has_value());
  for (std::size_t i = 1; i < asked.size(); ++i) {
    ASSERT_TRUE((*got)[i].has_value()) << asked[i];
    EXPECT_EQ((*got)[i]->value, "v" + asked[i].substr(1));
  }
  // A single get and a small chunk size (several MGETs, each split) agree.
  RedisOptions o = cluster_options(nodes_, prefix);
  o.batch_chunk = 7;
  Store small(o);
  auto again = small.get_many(keys);
  ASSERT_TRUE(again.ok()) << again.status();
  for (int i = 0; i < kN; ++i)
    EXPECT_EQ((*again)[static_cast<std::size_t>(i)]->value, "v" + std::to_string(i));
  EXPECT_EQ(store->get("k5")->value().value, "v5");
  // erase_many across nodes; then clear() walks every master.
  std::vector<std::string> half(keys.begin(), keys.begin() + kN / 2);
  ASSERT_TRUE(small.erase_many(half).ok());
  auto after = store->get_many(keys);
  ASSERT_TRUE(after.ok());
  for (int i = 0; i < kN; ++i)
    EXPECT_EQ((*after)[static_cast<std::size_t>(i)].has_value(), i >= kN / 2) << i;
  ASSERT_TRUE(small.clear().ok());
  auto cleared = store->get_many(keys);
  ASSERT_TRUE(cleared.ok());
  for (const auto& e : *cleared) EXPECT_FALSE(e.has_value());
  EXPECT_EQ(store->client()->stats().failures, 0u);
}

TEST_F(RedisClusterTest, ClientFromUriAndRawCommands) {
  std::string uri = "redis-cluster://";
  for (std::size_t i = 0; i < nodes_.size(); ++i) uri += (i ? "," : "") + nodes_[i];
  RedisOptions d;
  d.key_prefix = unique_prefix();
  d.command_timeout = testing::kTestCommandTimeout;
  RedisClient c(uri, d);
  const std::string k = d.key_prefix + "x";
  const std::string_view set[] = {"SET", k, "1"};
  const std::string ky = d.key_prefix + "y", kz = d.key_prefix + "z";
  const std::string_view del[] = {"DEL", k, ky, kz};
  ASSERT_TRUE(c.command(
                   set, [](std::size_t, RedisReplyRef r) { EXPECT_EQ(r.str(), "OK"); }, "SET")
                  .ok());
  long long n = -1;
  ASSERT_TRUE(c.command(
                   del, [&](std::size_t, RedisReplyRef r) { n = r.integer(); }, "DEL")
                  .ok());
  EXPECT_EQ(n, 1);  // integer replies of a split DEL are summed
}

TEST_F(RedisClusterTest, LockAndLoadGuardExclude) {
  auto client = std::make_shared<RedisClient>(cluster_options(nodes_));
  RedisLock a(client, "lock"), b(client, "lock");
  ASSERT_TRUE(a.try_lock().value());
  EXPECT_FALSE(b.try_lock().value());
  EXPECT_TRUE(RedisLock::is_locked(*client, "lock").value());
  EXPECT_TRUE(a.extend(seconds(5)).value());
  ASSERT_TRUE(a.unlock().ok());
  EXPECT_TRUE(b.try_lock().value());
  ASSERT_TRUE(b.unlock().ok());
}

// Five processes miss one key on the cluster at once: one load.
TEST_F(RedisClusterTest, CrossProcessSingleFlightLoadsOnce) {
  const std::string helper =
      (std::filesystem::read_symlink("/proc/self/exe").parent_path() / "redis_singleflight_helper")
          .string();
  ASSERT_TRUE(std::filesystem::exists(helper)) << helper;
  const std::string prefix = unique_prefix();
  std::string uri = "redis-cluster://";
  for (std::size_t i = 0; i < nodes_.size(); ++i) uri += (i ? "," : "") + nodes_[i];
  int start[2];
  ASSERT_EQ(::pipe(start), 0);
  std::vector<pid_t> pids;
  for (int i = 0; i < 5; ++i) {
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::dup2(start[0], 0);
      ::close(start[0]);
      ::close(start[1]);
      ::execl(helper.c_str(), helper.c_str(), uri.c_str(), "-", prefix.c_str(), "the-key",
              static_cast<char*>(nullptr));
      ::_exit(127);
    }
    pids.push_back(pid);
  }
  ::close(start[0]);
  ::close(start[1]);
  int ok = 0;
  for (pid_t pid : pids) {
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) ++ok;
  }
  EXPECT_EQ(ok, 5);
  RedisClient c(cluster_options(nodes_, prefix));
  std::string loads;
  const std::string k = prefix + "loads";
  const std::string_view get[] = {"GET", k};
  ASSERT_TRUE(c.command(
                   get, [&](std::size_t, RedisReplyRef r) { loads = r.str(); }, "GET")
                  .ok());
  EXPECT_EQ(loads, "1");
  const std::string the_key = prefix + "the-key";
  const std::string_view del[] = {"DEL", k, the_key};
  (void)c.command(
      del, [](std::size_t, RedisReplyRef) {}, "DEL");
}

// Two TieredStores (two "processes") over the cluster: a write through one
// evicts the other's L1 copy via the bus (pub/sub is broadcast cluster-wide).
TEST_F(RedisClusterTest, TwoTieredStoresStayCoherent) {
  const std::string prefix = unique_prefix();
  auto make = [&] {
    auto client = std::make_shared<RedisClient>(cluster_options(nodes_, prefix));
    auto bus = std::make_shared<RedisInvalidationBus>(client);
    auto tier = std::make_shared<TieredStore<std::string, std::string>>(
        std::make_shared<LocalStore<std::string, std::string>>(), std::make_shared<Store>(client),
        bus);
    EXPECT_TRUE(bus->wait_listening(seconds(10)));
    return std::make_pair(tier, bus);
  };
  // Plain variables, not structured bindings: clang 14 can't capture those in a lambda.
  const auto pair_a = make();
  const auto pair_b = make();
  const auto& a = pair_a.first;
  const auto& b = pair_b.first;
  const auto& bus_b = pair_b.second;
  ASSERT_TRUE(a->put("k", entry("one")).ok());
  ASSERT_EQ(b->get("k")->value().value, "one");  // b's L1 now holds "one"
  const auto received = bus_b->stats().received;
  ASSERT_TRUE(a->put("k", entry("two")).ok());
  ASSERT_TRUE(testing::eventually([&] { return bus_b->stats().received > received; }, seconds(10)));
  EXPECT_EQ(b->get("k")->value().value, "two");
  ASSERT_TRUE(a->clear().ok());
}

TEST(RedisSentinelTest, FindsTheMasterAndWritesThere) {
  const std::vector<std::string> sentinels = env_list("LARDER_TEST_REDIS_SENTINELS");
  if (sentinels.empty()) {
    if (testing::redis_required())
      FAIL() << "LARDER_TEST_REQUIRE_REDIS=1 but LARDER_TEST_REDIS_SENTINELS unset";
    GTEST_SKIP() << "no Sentinel: set LARDER_TEST_REDIS_SENTINELS (scripts/test.sh does)";
  }
  const std::string master = env_or("LARDER_TEST_REDIS_SENTINEL_MASTER", "mymaster");
  RedisOptions o = sentinel_options(sentinels, master);
  o.sentinels.insert(o.sentinels.begin(), "127.0.0.1:1");  // a dead sentinel first: skipped
  Store store(o);
  ASSERT_TRUE(store.put("k", entry("v")).ok());
  EXPECT_EQ(store.get("k")->value().value, "v");
  ASSERT_TRUE(store.clear().ok());
  RedisOptions unknown = sentinel_options(sentinels, "no-such-master");
  Store nowhere(unknown);
  auto r = nowhere.get("k");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(r.status().message().find("no-such-master"), absl::string_view::npos) << r.status();
}

}  // namespace
}  // namespace larder
