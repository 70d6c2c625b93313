// SPDX-License-Identifier: Apache-2.0
//
// Cache auto-recovery (cache.h, "Auto-recovery") and fills that are not
// changes (Store::fill): a write that reached the system of record is never
// reported as failed because the store was down; the old copy the store kept
// is never served by this process, and the drop is re-applied once the store
// answers; loads do not invalidate other instances' L1 copies.
//
// The store is a MapStore with set_down(); time is a ManualClock and the
// repair task runs on a ManualExecutor, so every step is explicit.
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "larder/cache.h"
#include "larder/invalidation_bus.h"
#include "larder/tiered_store.h"
#include "tests/testing/cache_env.h"
#include "tests/testing/fake_db.h"
#include "tests/testing/manual_scheduler.h"
#include "tests/testing/map_store.h"

namespace larder {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::CacheEnv;
using testing::MapStore;

const absl::Status kDown = absl::UnavailableError("store down");

using Db = testing::FakeDb<std::string, std::string>;

class CacheRecoveryTest : public ::testing::Test {
 protected:
  CacheEnv<> env;
  Db db;

  // base: the plain mechanism, without the late-write hold (tested below).
  CacheOptions<std::string, std::string> base() {
    CacheOptions<std::string, std::string> o = env.options();
    o.late_write_window = milliseconds(0);
    return o;
  }
  CacheOptions<std::string, std::string> write_through() {
    CacheOptions<std::string, std::string> o = base();
    o.write_mode = WriteMode::kWriteThrough;
    o.writer = db.writer();
    return o;
  }
  std::string read(Cache<std::string, std::string>& c, const std::string& k) {
    absl::StatusOr<std::string> v = c.get_or_load(k, db.loader());
    return v.ok() ? *v : "<" + v.status().ToString() + ">";
  }
};

TEST_F(CacheRecoveryTest, WriteThroughPutDuringAnOutageIsOkAndTheOldCopyIsNeverServed) {
  Cache<std::string, std::string> cache(env.store, write_through());
  db.set("price", "100");
  ASSERT_EQ(read(cache, "price"), "100");  // cached

  env.store->set_down(kDown);
  // The system of record takes the write; the store cannot drop "100".
  ASSERT_TRUE(cache.put("price", "120").ok());
  EXPECT_EQ(db.row("price"), "120");
  CacheStats st = cache.stats();
  EXPECT_EQ(st.invalidations_deferred, 1u);
  EXPECT_EQ(st.invalidations_pending, 1u);
  EXPECT_EQ(st.write_failures, 0u);

  // The store comes back still holding the old value (as a Redis that was
  // only unreachable would). It must not be served: the key is read through.
  env.store->set_down(absl::OkStatus());
  ASSERT_TRUE(env.store->raw("price").has_value());
  EXPECT_EQ(env.store->raw("price")->value, "100");
  const int loads = db.loads();
  EXPECT_EQ(read(cache, "price"), "120");
  EXPECT_EQ(db.loads(), loads + 1);
  EXPECT_EQ(cache.get_if_present("price"), std::nullopt);

  // The repair (queued by those reads) re-applies the drop; from then on the
  // key is an ordinary cache entry again.
  env.executor->run_all();
  st = cache.stats();
  EXPECT_EQ(st.invalidations_pending, 0u);
  EXPECT_EQ(st.invalidations_reapplied, 1u);
  EXPECT_EQ(read(cache, "price"), "120");
  EXPECT_EQ(read(cache, "price"), "120");
  EXPECT_EQ(db.loads(), loads + 2);  // one more load after the repair, then hits
  ASSERT_TRUE(env.store->raw("price").has_value());
  EXPECT_EQ(env.store->raw("price")->value, "120");
}

TEST_F(CacheRecoveryTest, TheRepairBacksOffWhileTheStoreStaysDown) {
  Cache<std::string, std::string> cache(env.store, write_through());
  env.store->set_down(kDown);
  ASSERT_TRUE(cache.put("k", "v").ok());
  (void)read(cache, "k");  // schedules the first attempt
  ASSERT_EQ(env.executor->run_all(), 1u);
  EXPECT_EQ(cache.stats().invalidations_pending, 1u);
  (void)read(cache, "k");  // not due: backing off
  EXPECT_EQ(env.executor->pending(), 0u);
  env.clock->advance(milliseconds(60));
  (void)read(cache, "k");  // due again
  ASSERT_EQ(env.executor->run_all(), 1u);
  EXPECT_EQ(cache.stats().invalidations_pending, 1u);
  env.clock->advance(milliseconds(60));  // the back-off doubled: not yet
  (void)read(cache, "k");
  EXPECT_EQ(env.executor->pending(), 0u);
  env.store->set_down(absl::OkStatus());
  env.clock->advance(milliseconds(60));
  (void)read(cache, "k");
  ASSERT_EQ(env.executor->run_all(), 1u);
  EXPECT_EQ(cache.stats().invalidations_pending, 0u);
}

// With a scheduler, the repair needs no call at all: the wake-up queues it
// once it is due, and keeps coming back (one outstanding at a time) while the
// store fails.
TEST_F(CacheRecoveryTest, WithASchedulerTheRepairRunsWithoutAnyCall) {
  auto scheduler = std::make_shared<testing::ManualScheduler>();
  CacheOptions<std::string, std::string> o = write_through();
  o.scheduler = scheduler;
  Cache<std::string, std::string> cache(env.store, o);
  env.store->set_down(kDown);
  ASSERT_TRUE(cache.put("k", "v").ok());
  ASSERT_TRUE(cache.put("j", "v").ok());
  EXPECT_EQ(scheduler->pending(), 1u);  // one wake-up for both keys
  env.clock->advance(milliseconds(50));
  EXPECT_EQ(scheduler->run_due(env.clock->now()), 1u);
  ASSERT_EQ(env.executor->run_all(), 1u);  // the repair: the store still fails
  EXPECT_EQ(cache.stats().invalidations_pending, 2u);
  EXPECT_EQ(scheduler->pending(), 1u);  // and it comes back
  env.store->set_down(absl::OkStatus());
  env.clock->advance(milliseconds(100));
  EXPECT_EQ(scheduler->run_due(env.clock->now()), 1u);
  ASSERT_EQ(env.executor->run_all(), 1u);
  EXPECT_EQ(cache.stats().invalidations_pending, 0u);
  EXPECT_EQ(cache.stats().invalidations_reapplied, 2u);
}

TEST_F(CacheRecoveryTest, EraseAndWriteBackPutDuringAnOutageAreOkAndRecover) {
  CacheOptions<std::string, std::string> o = write_through();
  Cache<std::string, std::string> cache(env.store, o);
  db.set("gone", "old");
  ASSERT_EQ(read(cache, "gone"), "old");
  env.store->set_down(kDown);
  ASSERT_TRUE(cache.erase("gone").ok());  // deleted in the system of record
  EXPECT_EQ(db.keys_erased(), 1);
  env.store->set_down(absl::OkStatus());
  // Never "old" again: NotFound from the loader.
  EXPECT_EQ(read(cache, "gone"), "<NOT_FOUND: no row>");
  env.executor->run_all();
  EXPECT_FALSE(env.store->raw("gone").has_value());

  CacheEnv<> wb_env;
  Db wb_db;
  CacheOptions<std::string, std::string> wo = wb_env.options();
  wo.late_write_window = milliseconds(0);
  wo.write_mode = WriteMode::kWriteBack;
  wo.writer = wb_db.writer();
  wo.write_back.delay = milliseconds(0);
  Cache<std::string, std::string> wb(wb_env.store, wo);
  ASSERT_TRUE(wb.put("views", "1").ok());
  ASSERT_TRUE(wb.flush().ok());
  wb_env.store->set_down(kDown);
  ASSERT_TRUE(wb.put("views", "2").ok());  // acknowledged: not an error
  EXPECT_EQ(wb.stats().invalidations_deferred, 1u);
  ASSERT_TRUE(wb.flush().ok());
  EXPECT_EQ(wb_db.row("views"), "2");
  wb_env.store->set_down(absl::OkStatus());
  absl::StatusOr<std::string> v = wb.get_or_load("views", wb_db.loader());
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(*v, "2");
  wb_env.executor->run_all();
  EXPECT_EQ(wb.stats().invalidations_pending, 0u);
}

TEST_F(CacheRecoveryTest, InvalidateDuringAnOutageReturnsTheErrorAndIsReappliedLater) {
  Cache<std::string, std::string> cache(env.store, base());
  db.set("k", "v1");
  ASSERT_EQ(read(cache, "k"), "v1");
  db.set("k", "v2");  // changed behind the cache (cache-aside)
  env.store->set_down(kDown);
  EXPECT_EQ(cache.invalidate("k").code(), absl::StatusCode::kUnavailable);
  env.store->set_down(absl::OkStatus());
  std::vector<std::string> keys{"k"};
  auto many =
      cache.get_many(std::span<const std::string>(keys), [&](std::span<const std::string> ks) {
        absl::flat_hash_map<std::string, std::string> m;
        for (const auto& k : ks) m[k] = db.load(k).value();
        return m;
      });
  ASSERT_TRUE(many.ok()) << many.status();
  EXPECT_EQ(many->at("k"), "v2");  // the store's "v1" was not used
  env.executor->run_all();
  EXPECT_EQ(cache.stats().invalidations_reapplied, 1u);
}

TEST_F(CacheRecoveryTest, PastTheBoundEveryKeyIsSuspectUntilOneClearSucceeds) {
  CacheOptions<std::string, std::string> o = write_through();
  o.max_pending_invalidations = 2;
  Cache<std::string, std::string> cache(env.store, o);
  db.set("other", "x");
  ASSERT_EQ(read(cache, "other"), "x");
  env.store->set_down(kDown);
  for (std::string k : {"a", "b", "c"}) ASSERT_TRUE(cache.put(k, "new").ok());
  EXPECT_EQ(cache.stats().invalidations_deferred, 3u);
  env.store->set_down(absl::OkStatus());
  // "other" was never written, but past the bound nothing is trusted.
  const int loads = db.loads();
  EXPECT_EQ(read(cache, "other"), "x");
  EXPECT_EQ(db.loads(), loads + 1);
  env.executor->run_all();  // one clear
  EXPECT_EQ(env.store->size(), 0u);
  EXPECT_EQ(cache.stats().invalidations_pending, 0u);
  EXPECT_EQ(read(cache, "other"), "x");
  EXPECT_EQ(read(cache, "other"), "x");
  EXPECT_EQ(db.loads(), loads + 2);
}

TEST_F(CacheRecoveryTest, ASuccessfulPutSettlesAnOlderDeferredDrop) {
  Cache<std::string, std::string> cache(env.store, write_through());
  env.store->set_down(kDown);
  ASSERT_TRUE(cache.put("k", "v1").ok());
  env.store->set_down(absl::OkStatus());
  ASSERT_TRUE(cache.put("k", "v2").ok());  // overwrote the old copy itself
  EXPECT_EQ(cache.stats().invalidations_pending, 0u);
  const int loads = db.loads();
  EXPECT_EQ(read(cache, "k"), "v2");
  EXPECT_EQ(db.loads(), loads);  // a hit
}

// ---- late writes (CacheOptions::late_write_window) ----
//
// A store write that failed may still be applied later: a SET that timed out
// in a stalled Redis lands after the repair's DEL or after a newer put. The
// test plays the late SET by writing the old entry into the store itself.

TEST_F(CacheRecoveryTest, APutThatFailedAndLandsLateIsDroppedAgainAfterTheWindow) {
  CacheOptions<std::string, std::string> o = write_through();
  o.late_write_window = seconds(2);
  Cache<std::string, std::string> cache(env.store, o);
  const Entry<std::string> late{"v1", env.clock->now() + seconds(10),
                                env.clock->now() + seconds(10)};
  env.store->set_down(absl::DeadlineExceededError("SET timed out"));
  ASSERT_TRUE(cache.put("k", "v1").ok());  // reached the db; its SET may still land
  env.store->set_down(absl::OkStatus());
  ASSERT_TRUE(cache.put("k", "v2").ok());       // the store takes v2...
  ASSERT_TRUE(env.store->put("k", late).ok());  // ...and the SET of v1 lands after it
  // Inside the window the key stays suspect: never served from the store.
  EXPECT_EQ(cache.stats().invalidations_pending, 1u);
  EXPECT_EQ(read(cache, "k"), "v2");
  env.executor->run_all();  // nothing to drop yet (the put of v2 was the first repair)
  ASSERT_TRUE(env.store->put("k", late).ok());  // v1 lands once more
  EXPECT_EQ(read(cache, "k"), "v2");
  env.clock->advance(milliseconds(1500));
  EXPECT_EQ(read(cache, "k"), "v2");
  EXPECT_EQ(env.executor->run_all(), 0u);  // not due: the window is not over
  EXPECT_EQ(cache.stats().invalidations_pending, 1u);
  env.clock->advance(milliseconds(600));
  EXPECT_EQ(read(cache, "k"), "v2");  // schedules the second drop
  ASSERT_EQ(env.executor->run_all(), 1u);
  EXPECT_EQ(cache.stats().invalidations_pending, 0u);
  // The late v1 is gone; from now on the key is an ordinary entry.
  EXPECT_FALSE(env.store->raw("k").has_value());
  const int loads = db.loads();
  EXPECT_EQ(read(cache, "k"), "v2");
  EXPECT_EQ(read(cache, "k"), "v2");
  EXPECT_EQ(db.loads(), loads + 1);
}

TEST_F(CacheRecoveryTest, AFillThatTimedOutIsHeldLikeAFailedPut) {
  CacheOptions<std::string, std::string> o = write_through();
  o.late_write_window = seconds(2);
  Cache<std::string, std::string> cache(env.store, o);
  db.set("k", "v1");
  env.store->set_down(absl::DeadlineExceededError("SET timed out"));
  EXPECT_EQ(read(cache, "k"), "v1");  // loaded; its fill timed out
  EXPECT_EQ(cache.stats().invalidations_deferred, 1u);
  env.store->set_down(absl::OkStatus());
  ASSERT_TRUE(cache.put("k", "v2").ok());
  ASSERT_TRUE(env.store
                  ->put("k", Entry<std::string>{"v1", env.clock->now() + seconds(10),
                                                env.clock->now() + seconds(10)})
                  .ok());  // the fill lands late
  EXPECT_EQ(read(cache, "k"), "v2");
  env.clock->advance(seconds(2));
  EXPECT_EQ(read(cache, "k"), "v2");
  env.executor->run_all();
  EXPECT_EQ(cache.stats().invalidations_pending, 0u);
  EXPECT_FALSE(env.store->raw("k").has_value());
  EXPECT_EQ(read(cache, "k"), "v2");
  // A fill refused outright (no connection: it was never sent) is not held.
  db.set("j", "j1");
  env.store->set_down(absl::UnavailableError("no connection"));
  EXPECT_EQ(read(cache, "j"), "j1");
  env.store->set_down(absl::OkStatus());
  EXPECT_EQ(cache.stats().invalidations_deferred, 1u);
}

// A timed-out fill is only a precaution: past the bound it is not deferred,
// so a long stall never turns into a clear of the whole (shared) store.
TEST_F(CacheRecoveryTest, TimedOutFillsPastTheBoundNeverForceAClear) {
  CacheOptions<std::string, std::string> o = write_through();
  o.late_write_window = seconds(2);
  o.max_pending_invalidations = 2;
  Cache<std::string, std::string> cache(env.store, o);
  db.set("other", "x");
  ASSERT_EQ(read(cache, "other"), "x");  // cached before the stall
  env.store->set_down(absl::DeadlineExceededError("SET timed out"));
  for (std::string k : {"a", "b", "c", "d"}) {
    db.set(k, k);
    EXPECT_EQ(read(cache, k), k);
  }
  env.store->set_down(absl::OkStatus());
  CacheStats st = cache.stats();
  EXPECT_EQ(st.invalidations_deferred, 2u);
  EXPECT_EQ(st.invalidations_pending, 2u);  // two keys, not "clear everything"
  const int loads = db.loads();
  EXPECT_EQ(read(cache, "other"), "x");  // still trusted
  EXPECT_EQ(db.loads(), loads);
  env.clock->advance(seconds(3));
  (void)read(cache, "a");
  env.executor->run_all();
  EXPECT_EQ(cache.stats().invalidations_pending, 0u);
  EXPECT_TRUE(env.store->raw("other").has_value());
}

TEST_F(CacheRecoveryTest, WithASchedulerTheSecondDropRunsWhenTheWindowEnds) {
  auto scheduler = std::make_shared<testing::ManualScheduler>();
  CacheOptions<std::string, std::string> o = write_through();
  o.late_write_window = seconds(2);
  o.scheduler = scheduler;
  Cache<std::string, std::string> cache(env.store, o);
  env.store->set_down(kDown);
  ASSERT_TRUE(cache.put("k", "v").ok());
  env.store->set_down(absl::OkStatus());
  env.clock->advance(milliseconds(50));
  EXPECT_EQ(scheduler->run_due(env.clock->now()), 1u);
  ASSERT_EQ(env.executor->run_all(), 1u);  // the first drop
  EXPECT_EQ(cache.stats().invalidations_reapplied, 1u);
  EXPECT_EQ(cache.stats().invalidations_pending, 1u);
  EXPECT_EQ(scheduler->pending(), 1u);  // a wake-up for the window's end
  ASSERT_TRUE(env.store
                  ->put("k", Entry<std::string>{"old", env.clock->now() + seconds(10),
                                                env.clock->now() + seconds(10)})
                  .ok());  // the late SET
  env.clock->advance(milliseconds(1000));
  EXPECT_EQ(scheduler->run_due(env.clock->now()), 1u);
  EXPECT_EQ(env.executor->run_all(), 0u);  // not yet
  env.clock->advance(milliseconds(1000));
  EXPECT_GE(scheduler->run_due(env.clock->now()), 1u);
  ASSERT_EQ(env.executor->run_all(), 1u);
  EXPECT_EQ(cache.stats().invalidations_pending, 0u);
  EXPECT_EQ(cache.stats().invalidations_reapplied, 2u);
  EXPECT_FALSE(env.store->raw("k").has_value());
}

TEST_F(CacheRecoveryTest, DestructionMakesOneLastRepairAttempt) {
  {
    Cache<std::string, std::string> cache(env.store, write_through());
    db.set("k", "v1");
    ASSERT_EQ(read(cache, "k"), "v1");
    env.store->set_down(kDown);
    ASSERT_TRUE(cache.put("k", "v2").ok());
    env.store->set_down(absl::OkStatus());
  }
  EXPECT_FALSE(env.store->raw("k").has_value());
}

// ---- fills are not changes ----

using Tiered = TieredStore<std::string, std::string>;

struct Instance {
  std::shared_ptr<MapStore<std::string, std::string>> l1;
  std::shared_ptr<Tiered> store;
  std::unique_ptr<Cache<std::string, std::string>> cache;

  Instance(CacheEnv<>& env, std::shared_ptr<InvalidationBus> bus,
           CacheOptions<std::string, std::string> o)
      : l1(std::make_shared<MapStore<std::string, std::string>>(env.clock)),
        store(std::make_shared<Tiered>(l1, env.store, std::move(bus),
                                       TieredStoreOptions{.clock = env.clock})),
        cache(std::make_unique<Cache<std::string, std::string>>(store, std::move(o))) {}
};

TEST_F(CacheRecoveryTest, AColdLoadInOneInstanceLeavesTheOtherInstancesL1Alone) {
  auto bus = std::make_shared<InProcessInvalidationBus>();
  Instance a(env, bus, env.options()), b(env, bus, env.options());
  for (int i = 0; i < 1000; ++i) db.set("k" + std::to_string(i), "v" + std::to_string(i));
  for (int i = 0; i < 1000; ++i)
    ASSERT_EQ(read(*b.cache, "k" + std::to_string(i)), "v" + std::to_string(i));
  ASSERT_EQ(b.l1->size(), 1000u);
  ASSERT_TRUE(env.store->clear().ok());  // L2 lost them: A has to load every key
  const int loads = db.loads();
  for (int i = 0; i < 1000; ++i)
    ASSERT_EQ(read(*a.cache, "k" + std::to_string(i)), "v" + std::to_string(i));
  EXPECT_EQ(db.loads(), loads + 1000);
  EXPECT_EQ(b.l1->size(), 1000u);
  EXPECT_EQ(b.store->tiered_counters().invalidations, 0u);
  EXPECT_EQ(bus->published(), 0u);

  // A change still reaches B.
  ASSERT_TRUE(a.cache->put("k7", "new").ok());
  EXPECT_EQ(b.store->tiered_counters().invalidations, 1u);
  EXPECT_FALSE(b.l1->raw("k7").has_value());
  EXPECT_EQ(read(*b.cache, "k7"), "new");  // from L2
}

TEST_F(CacheRecoveryTest, ARefreshAnnouncesOnlyAValueThatChanged) {
  auto bus = std::make_shared<InProcessInvalidationBus>();
  CacheOptions<std::string, std::string> o = env.options();
  o.stale_while_revalidate = seconds(30);
  Instance a(env, bus, o), b(env, bus, o);
  db.set("same", "s");
  db.set("moved", "m1");
  ASSERT_EQ(read(*a.cache, "same"), "s");
  ASSERT_EQ(read(*a.cache, "moved"), "m1");
  ASSERT_EQ(read(*b.cache, "same"), "s");  // B's L1 copies, from L2
  ASSERT_EQ(read(*b.cache, "moved"), "m1");
  db.set("moved", "m2");
  env.clock->advance(seconds(11));  // stale: A's reads refresh in the background
  EXPECT_EQ(read(*a.cache, "same"), "s");
  EXPECT_EQ(read(*a.cache, "moved"), "m1");
  env.executor->run_all();
  EXPECT_EQ(b.store->tiered_counters().invalidations, 1u);  // "moved" only
  EXPECT_TRUE(b.l1->raw("same").has_value());
  EXPECT_FALSE(b.l1->raw("moved").has_value());
}

// ---- TieredStore: failed publishes are sent again ----

class SwitchableBus final : public InvalidationBus {
 public:
  absl::Status publish(std::string_view k) override { return publish_from(kNoOrigin, k); }
  absl::Status publish_from(Origin o, std::string_view k) override {
    if (down) return absl::UnavailableError("bus down");
    return inner.publish_from(o, k);
  }
  absl::Status publish_clear_from(Origin o) override {
    if (down) return absl::UnavailableError("bus down");
    return inner.publish_clear_from(o);
  }
  std::unique_ptr<Subscription> subscribe(Listener l, GapListener g) override {
    return inner.subscribe(std::move(l), std::move(g));
  }
  std::unique_ptr<Subscription> subscribe_as(Origin self, Listener l, GapListener g) override {
    return inner.subscribe_as(self, std::move(l), std::move(g));
  }
  bool down = false;
  InProcessInvalidationBus inner;
};

TEST_F(CacheRecoveryTest, APublishThatFailedIsSentAgainOnceTheBusTakesMessages) {
  auto bus = std::make_shared<SwitchableBus>();
  Instance a(env, bus, env.options()), b(env, bus, env.options());
  db.set("k", "v1");
  ASSERT_EQ(read(*b.cache, "k"), "v1");       // B holds v1 in L1
  bus->down = true;                           // a short stall: B's subscriber never noticed a gap
  ASSERT_TRUE(a.cache->put("k", "v2").ok());  // L2 took it; the publish failed
  EXPECT_EQ(a.store->tiered_counters().publishes_pending, 1u);
  EXPECT_EQ(read(*b.cache, "k"), "v1");  // B cannot know yet
  bus->down = false;
  // Not due yet (the failed publish backs off); once due, A's next read sends it.
  (void)a.store->get("x");
  EXPECT_TRUE(b.l1->raw("k").has_value());
  env.clock->advance(milliseconds(60));
  (void)a.store->get("x");
  EXPECT_EQ(a.store->tiered_counters().publishes_pending, 0u);
  EXPECT_EQ(a.store->tiered_counters().publishes_resent, 1u);
  EXPECT_FALSE(b.l1->raw("k").has_value());
  EXPECT_EQ(read(*b.cache, "k"), "v2");
}

TEST_F(CacheRecoveryTest, WithASchedulerAFailedPublishIsSentAgainWithoutAnyCall) {
  auto bus = std::make_shared<SwitchableBus>();
  auto scheduler = std::make_shared<testing::ManualScheduler>();
  auto l1a = std::make_shared<MapStore<std::string, std::string>>(env.clock);
  auto a = std::make_shared<Tiered>(l1a, env.store, bus,
                                    TieredStoreOptions{.clock = env.clock, .scheduler = scheduler});
  Instance b(env, bus, env.options());
  db.set("k", "v1");
  ASSERT_EQ(read(*b.cache, "k"), "v1");
  bus->down = true;
  const TimePoint now = env.clock->now();
  ASSERT_TRUE(a->put("k", Entry<std::string>{"v2", now + seconds(5), now + seconds(5)}).ok());
  EXPECT_EQ(scheduler->pending(), 1u);
  env.clock->advance(milliseconds(50));
  EXPECT_EQ(scheduler->run_due(env.clock->now()), 1u);  // still down: scheduled again
  EXPECT_EQ(a->tiered_counters().publishes_pending, 1u);
  EXPECT_TRUE(b.l1->raw("k").has_value());
  bus->down = false;
  env.clock->advance(milliseconds(100));
  EXPECT_EQ(scheduler->run_due(env.clock->now()), 1u);
  EXPECT_EQ(a->tiered_counters().publishes_pending, 0u);
  EXPECT_FALSE(b.l1->raw("k").has_value());
  EXPECT_EQ(scheduler->pending(), 0u);
}

TEST_F(CacheRecoveryTest, TooManyFailedPublishesBecomeOneClear) {
  auto bus = std::make_shared<SwitchableBus>();
  CacheOptions<std::string, std::string> o = env.options();
  auto l1a = std::make_shared<MapStore<std::string, std::string>>(env.clock);
  auto a = std::make_shared<Tiered>(
      l1a, env.store, bus, TieredStoreOptions{.clock = env.clock, .max_pending_publishes = 2});
  Instance b(env, bus, o);
  db.set("z", "z");
  ASSERT_EQ(read(*b.cache, "z"), "z");
  bus->down = true;
  const TimePoint now = env.clock->now();
  for (std::string k : {"a", "b", "c"}) {
    ASSERT_TRUE(a->put(k, Entry<std::string>{"v", now + seconds(5), now + seconds(5)}).ok());
  }
  bus->down = false;
  ASSERT_TRUE(a->put("d", Entry<std::string>{"v", now + seconds(5), now + seconds(5)}).ok());
  EXPECT_EQ(a->tiered_counters().publishes_pending, 0u);
  EXPECT_FALSE(b.l1->raw("z").has_value());  // B dropped its whole L1
  EXPECT_GE(b.store->tiered_counters().gaps, 1u);
}

}  // namespace
}  // namespace larder
