// SPDX-License-Identifier: Apache-2.0
//
// TieredStore<LocalStore, RedisStore> kept coherent by RedisInvalidationBus,
// against a real redis-server: two instances (each with its own client, bus
// and L1, as two processes would have) see each other's writes, erases,
// batches and clears; a plain PUBLISH from another system invalidates; a
// private server restarted under the bus makes it reconnect by itself and
// report the gap; destruction is prompt, also while reconnecting.
//
// No test sleeps to wait for a message: NotifyingBus wraps the bus and
// signals a condition variable after the wrapped store's listener has run,
// and tests wait on it with a generous failure timeout.
#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "larder/internal/mutex.h"
#include "larder/larder.h"
#include "larder/redis.h"
#include "tests/integration/redis_test_util.h"
#include "tests/testing/testing.h"

namespace larder {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::elapsed;
using testing::options_for;
using testing::RedisServer;

constexpr milliseconds kWait{10'000};  // failure timeout only (sanitizers, 2 loaded cores)

// NotifyingBus: forwards everything to `inner`, and counts (under a mutex,
// with a condition variable) the keys and gaps delivered to its subscribers
// *after* their own callbacks returned, so a test can wait for "B has
// processed the message" without sleeping.
class NotifyingBus final : public InvalidationBus {
 public:
  explicit NotifyingBus(std::shared_ptr<InvalidationBus> inner) : inner_(std::move(inner)) {}

  absl::Status publish(std::string_view key) override { return inner_->publish(key); }
  absl::Status publish_from(Origin o, std::string_view key) override {
    return inner_->publish_from(o, key);
  }
  absl::Status publish_many_from(Origin o, std::span<const std::string> keys) override {
    return inner_->publish_many_from(o, keys);
  }
  absl::Status publish_clear_from(Origin o) override { return inner_->publish_clear_from(o); }
  std::unique_ptr<Subscription> subscribe(Listener l, GapListener g) override {
    return subscribe_as(kNoOrigin, std::move(l), std::move(g));
  }
  std::unique_ptr<Subscription> subscribe_as(Origin self, Listener l, GapListener g) override {
    return inner_->subscribe_as(
        self,
        [this, l = std::move(l)](std::string_view key) {
          if (l) l(key);
          internal::MutexLock lock(&mu_);
          ++keys_;
          cv_.notify_all();
        },
        [this, g = std::move(g)] {
          if (g) g();
          internal::MutexLock lock(&mu_);
          ++gaps_;
          cv_.notify_all();
        });
  }

  // wait_keys / wait_gaps: true once at least n were delivered.
  bool wait_keys(int n) {
    internal::MutexLock lock(&mu_);
    return cv_.wait_for(lock, kWait, [&] { return keys_ >= n; });
  }
  bool wait_gaps(int n) {
    internal::MutexLock lock(&mu_);
    return cv_.wait_for(lock, kWait, [&] { return gaps_ >= n; });
  }
  int keys() {
    internal::MutexLock lock(&mu_);
    return keys_;
  }

 private:
  std::shared_ptr<InvalidationBus> inner_;
  internal::Mutex mu_;
  internal::CondVar cv_;
  int keys_ = 0;
  int gaps_ = 0;
};

using L1 = LocalStore<std::string, std::string>;
using L2 = RedisStore<std::string, std::string>;
using Tiered = TieredStore<std::string, std::string>;

// Instance: what one process holds: its own client (in the store), bus and L1.
struct Instance {
  std::shared_ptr<L1> l1 = std::make_shared<L1>();
  std::shared_ptr<L2> l2;
  std::shared_ptr<RedisInvalidationBus> redis_bus;
  std::shared_ptr<NotifyingBus> bus;
  std::unique_ptr<Tiered> store;

  explicit Instance(const RedisOptions& o, TieredStoreOptions t = {},
                    RedisInvalidationBusOptions bo = {})
      : l2(std::make_shared<L2>(o)),
        redis_bus(std::make_shared<RedisInvalidationBus>(o, "larder:invalidate", bo)),
        bus(std::make_shared<NotifyingBus>(redis_bus)),
        store(std::make_unique<Tiered>(l1, l2, bus, std::move(t))) {}
};

Entry<std::string> fresh(std::string v) {
  const TimePoint now = std::chrono::system_clock::now();
  return Entry<std::string>{std::move(v), now + seconds(30), now + seconds(60)};
}

std::string value_of(const absl::StatusOr<std::optional<Entry<std::string>>>& got) {
  if (!got.ok()) return "<" + got.status().ToString() + ">";
  return got->has_value() ? (*got)->value : "<miss>";
}

TEST(RedisTieredTest, APutOnAIsSeenByBsNextGet) {
  LARDER_REQUIRE_REDIS_OR_SKIP(addr);
  const RedisOptions o = options_for(addr);
  Instance a(o), b(o);
  ASSERT_TRUE(a.redis_bus->wait_listening(kWait));
  ASSERT_TRUE(b.redis_bus->wait_listening(kWait));
  // An observer on A's own bus, subscribed after A's store: it hears every
  // message after A's store has (same thread, subscription order).
  NotifyingBus observer(a.redis_bus);
  auto watch = observer.subscribe(nullptr, nullptr);

  ASSERT_TRUE(a.store->put("k", fresh("v1")).ok());
  ASSERT_TRUE(b.bus->wait_keys(1));
  EXPECT_EQ(value_of(b.store->get("k")), "v1");  // from L2, now in B's L1
  EXPECT_EQ(value_of(b.store->get("k")), "v1");  // from B's L1
  EXPECT_EQ(b.store->tiered_counters().l1_hits, 1u);

  ASSERT_TRUE(a.store->put("k", fresh("v2")).ok());
  ASSERT_TRUE(b.bus->wait_keys(2));
  EXPECT_EQ(value_of(b.store->get("k")), "v2");
  EXPECT_EQ(b.store->tiered_counters().l2_hits, 2u);
  EXPECT_EQ(b.store->tiered_counters().invalidations, 2u);

  // A never heard its own two messages, and kept its own copy.
  ASSERT_TRUE(observer.wait_keys(2));
  EXPECT_EQ(a.bus->keys(), 0);
  EXPECT_EQ(a.store->tiered_counters().invalidations, 0u);
  EXPECT_EQ(value_of(a.store->get("k")), "v2");
  EXPECT_EQ(a.store->tiered_counters().l1_hits, 1u);

  // And the other way round: an erase on B.
  ASSERT_TRUE(b.store->erase("k").ok());
  ASSERT_TRUE(a.bus->wait_keys(1));
  EXPECT_EQ(value_of(a.store->get("k")), "<miss>");
  EXPECT_GE(a.redis_bus->stats().received, 3u);
  EXPECT_EQ(a.redis_bus->stats().published, 2u);
  EXPECT_TRUE(a.l2->clear().ok());
}

TEST(RedisTieredTest, BatchesAndClearReachTheOtherInstance) {
  LARDER_REQUIRE_REDIS_OR_SKIP(addr);
  const RedisOptions o = options_for(addr);
  Instance a(o), b(o);
  std::vector<std::pair<std::string, Entry<std::string>>> items{{"x", fresh("1")},
                                                                {"y", fresh("2")}};
  ASSERT_TRUE(a.store->put_many(items).ok());  // one pipeline of PUBLISH
  ASSERT_TRUE(b.bus->wait_keys(2));
  const std::vector<std::string> keys{"x", "y"};
  auto got = b.store->get_many(keys);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ((*got)[0]->value, "1");
  EXPECT_EQ((*got)[1]->value, "2");
  EXPECT_EQ(b.l1->size(), 2u);

  ASSERT_TRUE(a.store->clear().ok());
  ASSERT_TRUE(b.bus->wait_gaps(1));
  EXPECT_EQ(b.l1->size(), 0u);
  got = b.store->get_many(keys);
  ASSERT_TRUE(got.ok());
  EXPECT_FALSE((*got)[0].has_value());
  EXPECT_FALSE((*got)[1].has_value());
}

TEST(RedisTieredTest, APlainPublishFromAnotherSystemInvalidates) {
  LARDER_REQUIRE_REDIS_OR_SKIP(addr);
  const RedisOptions o = options_for(addr);
  Instance b(o);
  ASSERT_TRUE(b.store->put("user:7", fresh("old")).ok());
  ASSERT_EQ(b.l1->size(), 1u);
  // What a database trigger or redis-cli would send: bare key bytes.
  RedisClient raw(o);
  const std::string_view args[] = {"PUBLISH", b.redis_bus->channel(), "user:7"};
  long long receivers = -1;
  ASSERT_TRUE(
      raw.command(
             args, [&](std::size_t, RedisReplyRef r) { receivers = r.integer(); }, "PUBLISH")
          .ok());
  EXPECT_EQ(receivers, 1);
  ASSERT_TRUE(b.bus->wait_keys(1));
  EXPECT_EQ(b.l1->size(), 0u);
  EXPECT_TRUE(b.l2->clear().ok());
}

TEST(RedisTieredTest, TheChannelIsScopedByKeyPrefix) {
  LARDER_REQUIRE_REDIS_OR_SKIP(addr);
  RedisInvalidationBus one(options_for(addr, testing::unique_prefix() + "one:"));
  RedisInvalidationBus two(options_for(addr, testing::unique_prefix() + "two:"));
  EXPECT_NE(one.channel(), two.channel());
  EXPECT_TRUE(one.channel().ends_with("larder:invalidate"));
}

TEST(RedisTieredTest, ARestartedServerIsReconnectedToAndTheGapReported) {
  RedisServer server;
  ASSERT_TRUE(server.running());
  RedisOptions o = server.options();
  o.reconnect_backoff_min = milliseconds(5);
  o.reconnect_backoff_max = milliseconds(50);
  o.breaker_probe_interval = milliseconds(20);
  RedisInvalidationBusOptions bo;
  bo.ping_interval = milliseconds(200);
  Instance a(o, {}, bo), b(o, {}, bo);
  ASSERT_TRUE(b.redis_bus->wait_listening(kWait));
  ASSERT_TRUE(a.store->put("k", fresh("v1")).ok());
  ASSERT_TRUE(b.bus->wait_keys(1));
  ASSERT_EQ(value_of(b.store->get("k")), "v1");
  ASSERT_EQ(b.l1->size(), 1u);

  server.stop();  // SIGKILL: every message published now is lost to B
  server.start();
  ASSERT_TRUE(server.running());
  ASSERT_TRUE(b.bus->wait_gaps(1)) << "the bus did not reconnect and report the gap";
  EXPECT_EQ(b.l1->size(), 0u);  // B dropped what it could no longer trust
  const RedisInvalidationBusStats st = b.redis_bus->stats();
  EXPECT_GE(st.disconnects, 1u);
  EXPECT_GE(st.subscribes, 2u);
  EXPECT_GE(st.gaps, 1u);
  EXPECT_TRUE(st.listening);

  // Messages flow again after the reconnect (A's publishing client recovers
  // on its own too; its first calls may meet dead pooled connections).
  ASSERT_TRUE(a.redis_bus->wait_listening(kWait));
  ASSERT_TRUE(testing::eventually([&] { return a.store->put("k", fresh("v2")).ok(); }, kWait));
  ASSERT_TRUE(b.bus->wait_keys(2));
  EXPECT_EQ(value_of(b.store->get("k")), "v2");
}

TEST(RedisTieredTest, PublishFailuresAreCountedAndReported) {
  RedisServer server;
  ASSERT_TRUE(server.running());
  RedisOptions o = server.options();
  o.connect_timeout = milliseconds(200);
  o.command_timeout = milliseconds(200);
  internal::Mutex mu;
  std::vector<absl::Status> reported;
  TieredStoreOptions t;
  t.on_bus_error = [&](const absl::Status& s) {
    internal::MutexLock l(&mu);
    reported.push_back(s);
  };
  Instance a(o, t);
  server.stop();
  const absl::Status s = a.store->put("k", fresh("v"));
  EXPECT_FALSE(s.ok());  // L2's error
  EXPECT_EQ(a.store->tiered_counters().bus_errors, 1u);
  EXPECT_EQ(a.redis_bus->stats().publish_failures, 1u);
  EXPECT_EQ(a.store->tiered_counters().publishes_deferred, 1u);  // to be sent again
  EXPECT_EQ(a.store->tiered_counters().publishes_pending, 1u);
  auto in_l1 = a.store->l1()->get("k");
  ASSERT_TRUE(in_l1.ok());
  EXPECT_FALSE(in_l1->has_value());  // a failed put leaves no copy in L1
  internal::MutexLock l(&mu);
  ASSERT_EQ(reported.size(), 1u);
  EXPECT_TRUE(reported[0].code() == absl::StatusCode::kUnavailable ||
              reported[0].code() == absl::StatusCode::kDeadlineExceeded)
      << reported[0];
}

TEST(RedisTieredTest, DestructionIsPromptWhileListeningAndWhileReconnecting) {
  RedisServer server;
  ASSERT_TRUE(server.running());
  RedisOptions o = server.options();
  o.reconnect_backoff_min = milliseconds(500);
  o.reconnect_backoff_max = milliseconds(5000);
  RedisInvalidationBusOptions bo;
  bo.ping_interval = milliseconds(60'000);
  {
    auto bus = std::make_unique<RedisInvalidationBus>(o, "larder:invalidate", bo);
    auto sub = bus->subscribe([](std::string_view) {});
    ASSERT_TRUE(bus->wait_listening(kWait));
    sub.reset();
    EXPECT_LT(elapsed([&] { bus.reset(); }), milliseconds(1000));
  }
  {
    auto bus = std::make_unique<RedisInvalidationBus>(o, "larder:invalidate", bo);
    auto sub = bus->subscribe([](std::string_view) {});
    ASSERT_TRUE(bus->wait_listening(kWait));
    server.stop();  // the thread now backs off between refused connects
    ASSERT_TRUE(testing::eventually([&] { return bus->stats().connect_failures >= 1; }, kWait));
    EXPECT_LT(elapsed([&] { bus.reset(); }), milliseconds(1000));  // not the 5 s backoff
  }
}

TEST(RedisTieredTest, ASubscriberAddedWhileRedisIsDownGetsAGapOnceItListens) {
  RedisServer server;
  ASSERT_TRUE(server.running());
  RedisOptions o = server.options();
  o.connect_timeout = milliseconds(100);
  o.command_timeout = milliseconds(100);
  o.reconnect_backoff_min = milliseconds(5);
  o.reconnect_backoff_max = milliseconds(20);
  server.stop();
  RedisInvalidationBus redis_bus(o);
  NotifyingBus bus(std::shared_ptr<InvalidationBus>(&redis_bus, [](InvalidationBus*) {}));
  auto sub = bus.subscribe(nullptr, nullptr);  // gives up waiting after ~200 ms
  EXPECT_FALSE(redis_bus.stats().listening);
  server.start();
  ASSERT_TRUE(server.running());
  ASSERT_TRUE(bus.wait_gaps(1));
  EXPECT_TRUE(redis_bus.wait_listening(kWait));
}

}  // namespace
}  // namespace larder
