// SPDX-License-Identifier: Apache-2.0
//
// Auto-recovery against a real redis-server (cache.h, "Auto-recovery"): two
// service instances, each a Cache over TieredStore(LocalStore, RedisStore)
// with a RedisInvalidationBus, share a system of record. One of them changes
// a key while Redis is out (restarted with its data on disk, or SIGSTOPped
// for less than the bus's ping interval, so the other instance's subscriber
// never notices). The change is acknowledged (OK), and once Redis is back and
// the changing instance has re-applied its deferred drop (it does so on its
// own, with no call from the test), no read in either instance returns the
// old value. Covered for write-through put, erase, invalidate (cache-aside)
// and a write-back put that is flushed.
#include <chrono>
#include <memory>
#include <span>
#include <string>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "gtest/gtest.h"
#include "larder/cache.h"
#include "larder/internal/mutex.h"
#include "larder/local_store.h"
#include "larder/redis.h"
#include "larder/tiered_store.h"
#include "tests/integration/redis_test_util.h"
#include "tests/testing/fake_db.h"

namespace larder {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::eventually;
using testing::RedisServer;

using Str = std::string;

// The system of record both instances write to.
using Db = testing::FakeDb<Str, Str>;

struct Instance {
  std::shared_ptr<RedisInvalidationBus> bus;
  std::shared_ptr<TieredStore<Str, Str>> store;
  std::unique_ptr<Cache<Str, Str>> cache;

  Instance(const RedisOptions& o, Db& db, WriteMode mode) {
    RedisInvalidationBusOptions bo;
    bo.ping_interval = seconds(30);  // a short stall goes unnoticed by the subscriber
    bus = std::make_shared<RedisInvalidationBus>(o, "larder:invalidate", bo);
    store = std::make_shared<TieredStore<Str, Str>>(std::make_shared<LocalStore<Str, Str>>(),
                                                    std::make_shared<RedisStore<Str, Str>>(o), bus);
    CacheOptions<Str, Str> co;
    co.ttl = std::chrono::minutes(5);  // long: the ttl must not be what hides a stale value
    co.write_mode = mode;
    if (mode != WriteMode::kNone) co.writer = db.writer();
    if (mode == WriteMode::kWriteBack) co.write_back.delay = milliseconds(0);
    cache = std::make_unique<Cache<Str, Str>>(store, co);
  }
};

enum class Change { kWriteThroughPut, kErase, kInvalidate, kWriteBackPut };
enum class Outage { kRestart, kStall };

struct Case {
  Change change;
  Outage outage;
};

class RedisRecoveryTest : public ::testing::TestWithParam<Case> {};

WriteMode mode_for(Change c) {
  switch (c) {
    case Change::kWriteThroughPut:
    case Change::kErase:
      return WriteMode::kWriteThrough;
    case Change::kWriteBackPut:
      return WriteMode::kWriteBack;
    case Change::kInvalidate:
      return WriteMode::kNone;
  }
  return WriteMode::kNone;
}

TEST_P(RedisRecoveryTest, NoInstanceServesTheOldValueOnceRedisIsBack) {
  const Case c = GetParam();
  // appendfsync always: a restarted server comes back with the old value.
  RedisServer server({"--appendonly", "yes", "--appendfsync", "always"});
  ASSERT_TRUE(server.running());
  RedisOptions o = server.options();
  o.command_timeout = milliseconds(100);
  o.connect_timeout = milliseconds(100);
  o.breaker_failures = 1;
  o.breaker_probe_interval = milliseconds(20);
  o.reconnect_backoff_min = milliseconds(5);
  o.reconnect_backoff_max = milliseconds(50);
  Db db;
  db.set("price", "100");
  Instance a(o, db, mode_for(c.change)), b(o, db, mode_for(c.change));
  ASSERT_TRUE(a.bus->wait_listening(seconds(5)));
  ASSERT_TRUE(b.bus->wait_listening(seconds(5)));
  auto load = [&db](const Str& k) { return db.load(k); };
  ASSERT_EQ(a.cache->get_or_load("price", load).value(), "100");
  ASSERT_EQ(b.cache->get_or_load("price", load).value(), "100");  // B's L1 and Redis hold it

  if (c.outage == Outage::kRestart) {
    server.stop();
  } else {
    server.pause();
  }
  std::string expect = "120";
  switch (c.change) {
    case Change::kWriteThroughPut:
      EXPECT_TRUE(a.cache->put("price", "120").ok());  // committed: never reported as failed
      break;
    case Change::kWriteBackPut:
      EXPECT_TRUE(a.cache->put("price", "120").ok());
      break;
    case Change::kErase:
      EXPECT_TRUE(a.cache->erase("price").ok());
      expect = "<gone>";
      break;
    case Change::kInvalidate:
      db.set("price", "120");  // cache-aside: the service wrote the database itself
      EXPECT_FALSE(a.cache->invalidate("price").ok());  // not applied yet: the store's error
      break;
  }
  EXPECT_GE(a.cache->stats().invalidations_deferred, 1u);
  if (c.outage == Outage::kRestart) {
    server.start();
    ASSERT_TRUE(server.running());
  } else {
    server.resume();
  }
  if (c.change == Change::kWriteBackPut) {
    ASSERT_TRUE(a.cache->flush().ok());
  }

  // A re-applies its deferred drop by itself (no call on A), and its failed
  // publishes are sent again; both subscribers are listening again.
  ASSERT_TRUE(eventually([&] { return a.cache->stats().invalidations_pending == 0; }, seconds(10)))
      << "A never re-applied its deferred invalidation";
  ASSERT_TRUE(
      eventually([&] { return a.store->tiered_counters().publishes_pending == 0; }, seconds(10)))
      << "A never re-sent its failed publishes";
  ASSERT_TRUE(a.bus->wait_listening(seconds(10)));
  ASSERT_TRUE(b.bus->wait_listening(seconds(10)));

  for (Instance* in : {&a, &b}) {
    for (int i = 0; i < 3; ++i) {
      absl::StatusOr<Str> v = in->cache->get_or_load("price", load);
      const Str got =
          v.ok() ? *v
                 : (v.status().code() == absl::StatusCode::kNotFound ? "<gone>"
                                                                     : v.status().ToString());
      EXPECT_EQ(got, expect) << (in == &a ? "instance A" : "instance B") << ", read " << i;
    }
  }
}

std::string case_name(const ::testing::TestParamInfo<Case>& info) {
  static const char* const kChange[] = {"WriteThroughPut", "Erase", "Invalidate", "WriteBackPut"};
  static const char* const kOutage[] = {"Restart", "Stall"};
  return std::string(kChange[static_cast<int>(info.param.change)]) +
         kOutage[static_cast<int>(info.param.outage)];
}

INSTANTIATE_TEST_SUITE_P(ChangesAndOutages, RedisRecoveryTest,
                         ::testing::Values(Case{Change::kWriteThroughPut, Outage::kRestart},
                                           Case{Change::kWriteThroughPut, Outage::kStall},
                                           Case{Change::kErase, Outage::kRestart},
                                           Case{Change::kErase, Outage::kStall},
                                           Case{Change::kInvalidate, Outage::kRestart},
                                           Case{Change::kInvalidate, Outage::kStall},
                                           Case{Change::kWriteBackPut, Outage::kRestart},
                                           Case{Change::kWriteBackPut, Outage::kStall}),
                         case_name);

}  // namespace
}  // namespace larder
