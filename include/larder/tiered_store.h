// SPDX-License-Identifier: Apache-2.0
//
// TieredStore<K, V>: a Store made of two stores, a small fast L1 (typically a
// LocalStore in this process) in front of a large shared L2 (typically a
// RedisStore), with an optional InvalidationBus that keeps the L1s of every
// instance coherent with the L2 they share.
//
//   get(k):  L1 hit -> return it.  L1 miss -> L2; an L2 hit is copied into
//            L1 (same instants, capped by l1_max_ttl) and returned. An L2
//            error with an L1 miss is returned as the error (Cache then
//            degrades to its loader); an L1 hit never touches L2.
//   put(k):  L2, then L1, then publish "k changed" on the bus. When L2 fails,
//            L1's copy of k is dropped (a put that returns an error leaves no
//            value here that L2 and the other instances do not have) and L2's
//            error is returned; the bus is told anyway, so other instances
//            drop copies that are no longer current.
//   fill(k): a value loaded from the system of record (Store::fill): L2, then
//            L1, and no publish (it is not a change, and other instances'
//            copies are as current). When L2 fails, L1 keeps the copy.
//   erase:   L2, then L1, then publish. Same error rule as put.
//   get_many / put_many / erase_many: the batch forms of each tier; get_many
//            asks L2 once, for the L1 misses only.
//   clear(): L2, L1, then a clear marker on the bus (others drop their L1).
//
// How it differs from "just check two maps": an invalidation can overtake a
// fill. Instance B misses L1 and reads v1 from L2; meanwhile A writes v2 and
// publishes; B's listener erases k from its L1 (nothing there yet); then B
// copies v1 into L1 — stale until it expires. TieredStore prevents that with
// per-key-stripe invalidation sequence numbers (see "Fill guard" below), and
// on a gap (the bus may have lost messages) it clears L1 and voids every
// fill in flight. When invalidations can be lost without the bus noticing,
// TieredStoreOptions::l1_max_ttl bounds how long an L1 copy may be served.
//
// Keys travel on the bus as KeyCodec bytes (DefaultKeyCodec<K> by default:
// integers as decimal text, as RedisStore writes them); the constructor throws
// std::invalid_argument when a bus is given and K has no codec, or when l1 or l2 is null.
//
// Errors on the bus are never returned from put/erase (the write itself
// succeeded); they are counted in counters().errors and tiered_counters()
// .bus_errors and passed to TieredStoreOptions::on_bus_error. A key whose
// publish failed is remembered (internal/pending_invalidations.h, at most
// max_pending_publishes keys; past that, a clear marker) and published again
// once the bus takes messages: before the next publish, and from get /
// get_many once the retry is due (one caller at a time, backing off from
// 50 ms to 1 s of the store's clock while the bus keeps failing), and also
// without traffic, from a Scheduler (TieredStoreOptions::scheduler; with the
// system clock by default the process-wide default_scheduler()). So an
// instance whose subscriber never noticed a short Redis stall (no gap) still
// drops the copy it holds, about a second after the bus takes messages again.
//
// counters(): hits / misses are this store's answers (an L1 or an L2 hit is
// one hit); evictions, expirations and errors are the sums over both tiers
// plus this store's own errors (bus); size is max(L1, L2) (L1 holds a subset
// of L2 in steady state; remote L2s report 0), weight is L1's.
// tiered_counters() breaks it down.
//
// Thread-safety: every method may be called concurrently (as far as the two
// stores allow, which the Store contract requires). Bus callbacks run on the
// bus's thread (Redis) or the publisher's (in process) and take no lock of
// TieredStore's.
//
// Example:
//
//   auto l1 = std::make_shared<larder::LocalStore<std::string, User>>(
//       larder::LocalStoreOptions{.max_entries = 10'000});
//   auto l2 = std::make_shared<larder::RedisStore<std::string, User>>(redis_opts);
//   auto bus = std::make_shared<larder::RedisInvalidationBus>(redis_opts);
//   auto store = std::make_shared<larder::TieredStore<std::string, User>>(
//       l1, l2, bus, larder::TieredStoreOptions{.l1_max_ttl = std::chrono::seconds(30)});
//   larder::Cache<std::string, User> cache(store, {.ttl = std::chrono::minutes(5)});
//
// TieredStore<std::string, std::string> and TieredStore<std::int64_t,
// std::string> are compiled once in larder::core (`extern template` at the end
// of this header); other types are instantiated where they are used.
#ifndef LARDER_TIERED_STORE_H_
#define LARDER_TIERED_STORE_H_

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/base/optimization.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "larder/clock.h"
#include "larder/codec.h"
#include "larder/internal/invoke.h"
#include "larder/internal/mutex.h"
#include "larder/internal/pending_invalidations.h"
#include "larder/internal/striped_counter.h"
#include "larder/invalidation_bus.h"
#include "larder/scheduler.h"
#include "larder/store.h"

namespace larder {

// TieredStoreOptions: plain aggregate; every field has a default.
struct TieredStoreOptions {
  // l1_max_ttl: an L1 copy lives at most this long from when it was put in
  // L1 (its instants are capped at now + l1_max_ttl). Bounds staleness when
  // invalidations are lost unnoticed. 0: no cap (L1 copies keep L2's instants).
  // An entry answered from L1 carries the capped instants; while it is
  // visible they give the same Age as L2's would (both caps are later than
  // now), but a cache deriving "when was it written" from fresh_until may
  // see it a little earlier than it was.
  std::chrono::milliseconds l1_max_ttl{0};
  // clock: for l1_max_ttl. null: system_clock().
  std::shared_ptr<Clock> clock{};
  // on_bus_error: called (from any thread, outside every lock) with each bus
  // failure: a publish that failed, or a received key that did not decode
  // (kDataLoss). null: only counted. An exception it throws is swallowed (the
  // failure is counted in bus_errors): it never escapes put() or stops the
  // bus thread.
  std::function<void(const absl::Status&)> on_bus_error{};
  // max_pending_publishes: most keys whose failed publish is remembered to be
  // sent again; past it, a clear marker is sent instead (every other instance
  // drops its whole L1). Must be > 0.
  std::size_t max_pending_publishes = 10'000;
  // scheduler: re-sends failed publishes when no call comes along. It must
  // read the same clock as `clock`. null: default_scheduler() with the
  // system clock; none with any other clock (calls drive the re-sends).
  std::shared_ptr<Scheduler> scheduler{};
};

// TieredCounters: TieredStore's view of its two tiers and its bus.
struct TieredCounters {
  StoreCounters l1, l2;                  // each tier's own counters()
  std::uint64_t l1_hits = 0;             // get / get_many answered from L1
  std::uint64_t l2_hits = 0;             // answered from L2 (and copied into L1)
  std::uint64_t misses = 0;              // in neither tier
  std::uint64_t fills_voided = 0;        // L1 copies not made (the key erased from L1
                                         // instead) because a concurrent write or
                                         // invalidation of the key may have overtaken them
  std::uint64_t published = 0;           // keys and clears published
  std::uint64_t invalidations = 0;       // keys received from other origins (L1 erased)
  std::uint64_t gaps = 0;                // on_gap / clears received (L1 cleared)
  std::uint64_t bus_errors = 0;          // failed publishes, undecodable keys
  std::uint64_t publishes_deferred = 0;  // keys (or clears) whose publish failed, to send again
  std::uint64_t publishes_resent = 0;    // of those, sent again once the bus took messages
  std::uint64_t publishes_pending = 0;   // keys waiting to be sent again, now
};

template <class K, class V, class KeyCodec = DefaultKeyCodec<K>>
class TieredStore : public Store<K, V> {
 public:
  // TieredStore: l1 in front of l2; with a bus, coherent with every other
  // TieredStore on that bus. Throws std::invalid_argument when l1 or l2 is
  // null, or a bus is given and KeyCodec is not a codec for K.
  TieredStore(std::shared_ptr<Store<K, V>> l1, std::shared_ptr<Store<K, V>> l2,
              std::shared_ptr<InvalidationBus> bus = nullptr)
      : TieredStore(std::move(l1), std::move(l2), std::move(bus), TieredStoreOptions{}) {}

  TieredStore(std::shared_ptr<Store<K, V>> l1, std::shared_ptr<Store<K, V>> l2,
              std::shared_ptr<InvalidationBus> bus, TieredStoreOptions options)
      : l1_(std::move(l1)),
        l2_(std::move(l2)),
        bus_(std::move(bus)),
        options_(std::move(options)),
        clock_(tier_clock(options_.clock, l1_.get(), l2_.get())),
        origin_(InvalidationBus::new_origin()),
        unsent_(std::max<std::size_t>(options_.max_pending_publishes, 1)),
        scheduler_(options_.scheduler != nullptr                         ? options_.scheduler
                   : dynamic_cast<SystemClock*>(clock_.get()) != nullptr ? default_scheduler()
                                                                         : nullptr) {
    if (l1_ == nullptr) throw std::invalid_argument("TieredStore: l1 is null");
    if (l2_ == nullptr) throw std::invalid_argument("TieredStore: l2 is null");
    if (options_.l1_max_ttl.count() < 0) {
      throw std::invalid_argument("TieredStoreOptions: l1_max_ttl must be >= 0");
    }
    if (options_.max_pending_publishes == 0) {
      throw std::invalid_argument("TieredStoreOptions: max_pending_publishes must be > 0");
    }
    if (bus_ != nullptr) {
      if constexpr (!kHasCodec) {
        throw std::invalid_argument(
            "TieredStore: an InvalidationBus carries keys as bytes, and this key type has no "
            "larder::Codec (specialise larder::Codec<K> or pass a KeyCodec)");
      } else {
        subscription_ = bus_->subscribe_as(
            origin_, [this](std::string_view bytes) { on_invalidate(bytes); },
            [this] { on_gap(); });
      }
    }
  }

  // tier_clock: the one clock of the tiers: options.clock, else the tiers'
  // (Store::clock()), else system_clock(). Throws std::invalid_argument when
  // two of them read different clocks.
  static std::shared_ptr<Clock> tier_clock(std::shared_ptr<Clock> own, const Store<K, V>* l1,
                                           const Store<K, V>* l2) {
    std::shared_ptr<Clock> c = std::move(own);
    for (const Store<K, V>* tier : {l1, l2}) {
      if (tier == nullptr) continue;
      std::shared_ptr<Clock> tc = tier->clock();
      if (tc == nullptr) continue;
      if (c == nullptr) {
        c = std::move(tc);
      } else if (!same_clock(*c, *tc)) {
        throw std::invalid_argument(
            "TieredStore: clock: l1, l2 and TieredStoreOptions::clock read different clocks; set "
            "the clock once (leave TieredStoreOptions::clock null to use the tiers')");
      }
    }
    return c != nullptr ? c : system_clock();
  }

  // Unsubscribes first: no bus callback runs once the destructor is past it;
  // then stops the re-send wake-ups (waiting for one in progress).
  ~TieredStore() override {
    subscription_.reset();
    tether_->close();
  }

  TieredStore(const TieredStore&) = delete;
  TieredStore& operator=(const TieredStore&) = delete;

  // get: see the file comment. Errors: L2's (kUnavailable, kDeadlineExceeded)
  // when L1 misses. An L1 error counts and is treated as a miss.
  absl::StatusOr<std::optional<Entry<V>>> get(const K& key) override {
    if (ABSL_PREDICT_FALSE(unsent_.any())) resend_due();
    absl::StatusOr<std::optional<Entry<V>>> got = l1_->get(key);
    if (got.ok() && got->has_value()) {
      l1_hits_.add();
      return got;
    }
    const Guard guard = guard_for(key);
    got = l2_->get(key);
    if (!got.ok()) return got;
    if (!got->has_value()) {
      misses_.add();
      return got;
    }
    l2_hits_.add();
    copy_to_l1(key, **got, guard);
    return got;
  }

  // put: L2, then L1, then publish. Returns L2's error if L2 failed (then L1
  // holds no copy of key), else L1's; bus failures are not returned.
  absl::Status put(const K& key, Entry<V> entry) override {
    absl::Status s = write(key, std::move(entry), /*keep_l1_on_l2_error=*/false);
    publish_key(key);
    return s;
  }

  // fill: L2, then L1; not published (Store::fill). Returns L2's error if L2
  // failed (L1 keeps the loaded copy), else L1's.
  absl::Status fill(const K& key, Entry<V> entry) override {
    return write(key, std::move(entry), /*keep_l1_on_l2_error=*/true);
  }

  // erase: L2, then L1, then publish. Returns the first error.
  absl::Status erase(const K& key) override {
    const Ticket t = begin_write(stripe_of(key), 1, [&] { (void)l1_->erase(key); });
    absl::Status s = l2_step(t, key, [&] { return l2_->erase(key); });
    absl::Status s1;
    finish_write(t, 1, [&](bool) { s1 = l1_->erase(key); });
    publish_key(key);
    return s.ok() ? s1 : s;
  }

  // get_many: L1's batch, then one L2 batch for L1's misses. Fails as a
  // whole when that L2 batch fails.
  absl::StatusOr<std::vector<std::optional<Entry<V>>>> get_many(std::span<const K> keys) override {
    std::vector<std::optional<Entry<V>>> out(keys.size());
    if (keys.empty()) return out;
    if (ABSL_PREDICT_FALSE(unsent_.any())) resend_due();
    absl::StatusOr<std::vector<std::optional<Entry<V>>>> first = l1_->get_many(keys);
    std::vector<std::size_t> missing;
    if (first.ok() && first->size() == keys.size()) {
      for (std::size_t i = 0; i < keys.size(); ++i) {
        if ((*first)[i].has_value()) {
          out[i] = std::move((*first)[i]);
        } else {
          missing.push_back(i);
        }
      }
    } else {
      for (std::size_t i = 0; i < keys.size(); ++i) missing.push_back(i);
    }
    if (missing.size() != keys.size()) l1_hits_.add(keys.size() - missing.size());
    if (missing.empty()) return out;
    std::vector<K> ask;
    std::vector<Guard> guards;
    ask.reserve(missing.size());
    guards.reserve(missing.size());
    for (std::size_t i : missing) {
      ask.push_back(keys[i]);
      guards.push_back(guard_for(keys[i]));
    }
    absl::StatusOr<std::vector<std::optional<Entry<V>>>> second =
        l2_->get_many(std::span<const K>(ask));
    if (!second.ok()) return std::move(second).status();
    if (second->size() != ask.size()) {
      return absl::InternalError("TieredStore: L2 get_many answered the wrong number of keys");
    }
    std::size_t found = 0;
    for (std::size_t j = 0; j < ask.size(); ++j) {
      std::optional<Entry<V>>& e = (*second)[j];
      if (!e.has_value()) continue;
      ++found;
      copy_to_l1(ask[j], *e, guards[j]);
      out[missing[j]] = std::move(e);
    }
    l2_hits_.add(found);
    if (found != ask.size()) misses_.add(ask.size() - found);
    return out;
  }

  // put_many: L2's batch, then L1's, then publish every key. Returns L2's
  // error if any (then L1 holds none of the keys), else L1's.
  absl::Status put_many(std::span<const std::pair<K, Entry<V>>> entries) override {
    if (entries.empty()) return absl::OkStatus();
    const auto key_at = [&](std::size_t i) -> const K& { return entries[i].first; };
    BatchWrite<decltype(key_at)> batch(*this, entries.size(), key_at);
    absl::Status s = l2_->put_many(entries);
    absl::Status s1;
    batch.finish([&](const StripeGroup& g, bool sole) {
      // Which keys L2 took when it failed is unknown: drop every copy
      // here, as put() does.
      if (s.ok() && sole) {
        std::vector<std::pair<K, Entry<V>>> capped;
        capped.reserve(g.items.size());
        for (std::size_t i : g.items) capped.emplace_back(entries[i].first, cap(entries[i].second));
        absl::Status p = l1_->put_many(std::span<const std::pair<K, Entry<V>>>(capped));
        if (p.ok()) return;
        if (s1.ok()) s1 = p;
      }
      (void)batch.erase_l1(g);  // never leave an old copy behind
    });
    publish_keys([&](auto&& emit) {
      for (const auto& kv : entries) emit(kv.first);
    });
    return s.ok() ? s1 : s;
  }

  // erase_many: L2's batch, then L1's, then publish every key.
  absl::Status erase_many(std::span<const K> keys) override {
    if (keys.empty()) return absl::OkStatus();
    const auto key_at = [&](std::size_t i) -> const K& { return keys[i]; };
    BatchWrite<decltype(key_at)> batch(*this, keys.size(), key_at);
    absl::Status s = l2_->erase_many(keys);
    absl::Status s1;
    batch.finish([&](const StripeGroup& g, bool) {
      absl::Status e = batch.erase_l1(g);
      if (s1.ok()) s1 = e;
    });
    publish_keys([&](auto&& emit) {
      for (const K& k : keys) emit(k);
    });
    return s.ok() ? s1 : s;
  }

  // clear: L2, then L1, then a clear marker on the bus (other instances drop
  // their L1; with a bus that has no clear marker they keep it, see
  // invalidation_bus.h). Returns the first tier error.
  absl::Status clear() override {
    absl::Status s = l2_->clear();
    absl::Status s1 = clear_l1();
    publish_clear();
    return s.ok() ? s1 : s;
  }

  std::shared_ptr<Clock> clock() const override { return clock_; }

  // set_capacity: L1's bound (L2's is the server's): L1->set_capacity.
  absl::Status set_capacity(std::uint64_t bound) override { return l1_->set_capacity(bound); }

  StoreCounters counters() const override {
    const StoreCounters a = l1_->counters();
    const StoreCounters b = l2_->counters();
    StoreCounters c;
    c.hits = l1_hits_.load() + l2_hits_.load();
    c.misses = misses_.load();
    c.evictions = a.evictions + b.evictions;
    c.expirations = a.expirations + b.expirations;
    c.errors = a.errors + b.errors + bus_errors_.load();
    c.size = std::max(a.size, b.size);
    c.weight = a.weight;
    return c;
  }

  // for_each_metric: its own counters (store=<store_label>), each tier's
  // (store="l1", store="l2") and the tier and bus counters (metrics.h).
  void for_each_metric(std::span<const MetricLabel> labels, std::string_view store_label,
                       MetricCallback out) const override {
    Store<K, V>::for_each_metric(labels, store_label, out);
    l1_->for_each_metric(labels, "l1", out);
    l2_->for_each_metric(labels, "l2", out);
    const TieredCounters c = tiered_counters();
    const internal::MetricLabels<8> l(labels, {{"store", store_label}});
    using internal::emit_counter;
    emit_counter(out, "larder_tiered_l1_hits_total", "Gets answered from L1", l.span(), c.l1_hits);
    emit_counter(out, "larder_tiered_l2_hits_total", "Gets answered from L2", l.span(), c.l2_hits);
    emit_counter(out, "larder_tiered_fills_voided_total",
                 "L1 copies not made because a concurrent change may have overtaken them", l.span(),
                 c.fills_voided);
    emit_counter(out, "larder_tiered_published_total", "Keys and clears published on the bus",
                 l.span(), c.published);
    emit_counter(out, "larder_tiered_invalidations_total",
                 "Keys received from other instances (L1 erased)", l.span(), c.invalidations);
    emit_counter(out, "larder_tiered_gaps_total", "Bus gaps and clears received (L1 cleared)",
                 l.span(), c.gaps);
    emit_counter(out, "larder_tiered_bus_errors_total", "Failed publishes and undecodable keys",
                 l.span(), c.bus_errors);
    internal::emit_gauge(out, "larder_tiered_publishes_pending",
                         "Keys waiting to be published again", l.span(),
                         static_cast<double>(c.publishes_pending));
  }

  TieredCounters tiered_counters() const {
    TieredCounters c;
    c.l1 = l1_->counters();
    c.l2 = l2_->counters();
    c.l1_hits = l1_hits_.load();
    c.l2_hits = l2_hits_.load();
    c.misses = misses_.load();
    c.fills_voided = fills_voided_.load();
    c.published = published_.load();
    c.invalidations = invalidations_.load();
    c.gaps = gaps_.load();
    c.bus_errors = bus_errors_.load();
    c.publishes_deferred = publishes_deferred_.load();
    c.publishes_resent = publishes_resent_.load();
    c.publishes_pending = unsent_.size() + (unsent_.clear_needed() ? 1 : 0);
    return c;
  }

  const std::shared_ptr<Store<K, V>>& l1() const { return l1_; }
  const std::shared_ptr<Store<K, V>>& l2() const { return l2_; }
  const std::shared_ptr<InvalidationBus>& bus() const { return bus_; }
  // origin: the id this store publishes with (and is deaf to).
  InvalidationBus::Origin origin() const { return origin_; }

 private:
  // ---- Fill guard ----
  // Two invariants:
  //   1. no L1 copy made from an L2 read survives a change of its key (a
  //      write here, or an invalidation from another instance) that arrived
  //      after the read began;
  //   2. reads through this instance are monotonic: once a get has returned
  //      a write's value (from either tier), no later get returns an older
  //      value of that key, even while fills race the write.
  // Scheme: keys map to kStripes stripes (hash of the key's codec bytes).
  // Each stripe has a mutex, a count of writes in flight (past their start,
  // before their L1 step) and a sequence number of finished changes.
  //   write (put, fill, erase and their batches): under the stripe lock,
  //     in_flight += 1, remember seq -- the ticket -- and erase the key from
  //     L1; then the L2 step, no lock held; then under the stripe lock
  //     again: in_flight -= 1, seq += 1, and the L1 step: the new value is
  //     put only if this write was alone on its stripe (no other write in
  //     flight, seq as the ticket saw it), else the key is erased from L1 --
  //     two writers may reach L2 in one order and L1 in the other, and a
  //     miss is cheaper than a stale copy. The erase at the start matters
  //     for monotonic reads: while the write is in flight, L1 holds no copy
  //     of the key, so every reader asks L2, which is linearizable; without
  //     it, an older copy filled just before the write began could be read
  //     from L1 after another reader had missed L1 and read the new value
  //     from L2.
  //   fill from an L2 hit: snapshot seq before the L2 read (no lock); after
  //     it, under the stripe lock, the copy is put into L1 only if no write
  //     is in flight and seq did not move. A write that began before the
  //     check is either still in flight or has moved seq, so a value read
  //     from L2 before that write's L2 step can never land in L1 after it;
  //     one filled before the write began is erased by the write's start.
  //     So no reader of this instance can see a write's value (from L2 on
  //     an L1 miss, or from L1) and then an older one. Writes made through
  //     other instances reach this L1 through the bus, later: until the
  //     message arrives this instance can serve its older copy.
  //     A write whose L2 step throws ends (in_flight -= 1, seq += 1, L1
  //     erase) before the exception leaves, batches too (BatchWrite).
  //   received invalidation: under the stripe lock, seq += 1 and erase L1.
  //   clear and bus gap: seq += 1 on every stripe, each under its lock, one
  //     at a time, then L1 cleared. A fill or write that checked its stripe
  //     before the bump put its copy before it, so the L1 clear removes it;
  //     one that checks after the bump sees seq moved (or read L2 after the
  //     clear).
  // Every change of seq and in_flight, and every L1 step of a write, fill or
  // invalidation, happens under the key's stripe lock: a check and the L1
  // step it guards are atomic against every other change of the key.
  // Invariant, once every message is delivered and no call is in flight:
  // every L1 copy equals L2's entry (tiered_store_test's concurrent test
  // checks exactly that). The one deliberate exception: a fill whose L2
  // write failed keeps its L1 copy (a value just loaded from the system of
  // record).
  // Cost: an L1 hit takes no lock. A miss that copies into L1 takes one
  // stripe lock around the L1 put, a write takes it twice (both far cheaper
  // than the L2 round trip between them). A collision on a stripe only
  // voids a copy (a later miss), never keeps a stale one. Without a codec
  // (so without a bus) all keys share stripe 0: still correct, less parallel.
  // L1 is called with a stripe lock held: L1's removal listener must not call
  // back into this TieredStore.
  static constexpr bool kHasCodec = internal::has_key_codec<K, KeyCodec>();
  static constexpr std::size_t kStripes = 256;

  struct Stripe {
    internal::Mutex mu;
    std::atomic<std::uint64_t> seq{0};                // finished changes (read unlocked by guards)
    std::uint64_t in_flight ABSL_GUARDED_BY(mu) = 0;  // writes between start and their L1 step
  };

  // Guard: what a fill saw before its L2 read.
  struct Guard {
    std::size_t stripe;
    std::uint64_t seq;
  };
  // Ticket: what a write saw when it started.
  using Ticket = Guard;

  // StripeGroup: the positions of a batch's keys that share a stripe, in
  // batch order.
  struct StripeGroup {
    std::size_t stripe;
    std::vector<std::size_t> items;
  };

  static std::size_t stripe_of(const K& key) {
    if constexpr (kHasCodec) {
      std::string bytes;
      KeyCodec::encode(key, bytes);
      return stripe_of_bytes(bytes);
    } else {
      (void)key;
      return 0;
    }
  }
  static std::size_t stripe_of_bytes(std::string_view bytes) {
    return std::hash<std::string_view>{}(bytes) % kStripes;
  }

  template <class KeyAt>
  static std::vector<StripeGroup> group_by_stripe(std::size_t n, KeyAt&& key_at) {
    std::vector<StripeGroup> groups;
    absl::flat_hash_map<std::size_t, std::size_t> index;  // stripe -> position in groups
    for (std::size_t i = 0; i < n; ++i) {
      const std::size_t st = stripe_of(key_at(i));
      auto [it, inserted] = index.try_emplace(st, groups.size());
      if (inserted) groups.push_back(StripeGroup{st, {}});
      groups[it->second].items.push_back(i);
    }
    return groups;
  }

  Guard guard_for(const K& key) const {
    const std::size_t st = stripe_of(key);
    return Guard{st, stripes_[st].seq.load()};
  }

  // begin_write: n writes of keys on `stripe` start (see "Fill guard"):
  // drop_l1 erases their keys from L1 under the stripe lock.
  template <class DropL1>
  Ticket begin_write(std::size_t stripe, std::size_t n, DropL1&& drop_l1) {
    Stripe& s = stripes_[stripe];
    internal::MutexLock lock(&s.mu);
    drop_l1();  // first: if it throws, nothing is counted in flight
    s.in_flight += n;
    return Ticket{stripe, s.seq.load()};
  }

  // finish_write: the n writes of begin_write reached past their L2 step;
  // runs l1_step(sole) under the stripe lock, sole when nothing else changed
  // the stripe since the ticket (then the write may put its value into L1;
  // otherwise it must only erase). A write that is not sole counts as a
  // voided fill.
  template <class L1Step>
  void finish_write(const Ticket& t, std::size_t n, L1Step&& l1_step) {
    Stripe& s = stripes_[t.stripe];
    internal::MutexLock lock(&s.mu);
    s.in_flight -= n;
    const bool sole = s.in_flight == 0 && s.seq.load() == t.seq;
    s.seq.fetch_add(1);
    if (!sole) fills_voided_.add(n);
    l1_step(sole);
  }

  // l2_step: the L2 call of one write counted in flight on ticket t. If it
  // throws (a Store may: bad_alloc, a user's store), the write ends with an
  // L1 erase before the exception leaves, so its stripe is not left counted
  // in flight, refusing every fill for good.
  template <class Step>
  absl::Status l2_step(const Ticket& t, const K& key, Step&& step) {
    try {
      return step();
    } catch (...) {
      finish_write(t, 1, [&](bool) { (void)l1_->erase(key); });
      throw;
    }
  }

  // BatchWrite: the writes of one batch, grouped by stripe, each group
  // counted in flight (begin_write, which erases the group's keys from L1)
  // from construction until finish() runs its L1 step. A group left
  // unfinished -- the L2 step threw -- is ended by the destructor with only
  // the L1 erase, as l2_step does for one key.
  template <class KeyAt>
  class BatchWrite {
   public:
    BatchWrite(TieredStore& t, std::size_t n, KeyAt key_at)
        : t_(t), key_at_(std::move(key_at)), groups_(group_by_stripe(n, key_at_)) {
      tickets_.reserve(groups_.size());
      try {
        for (const StripeGroup& g : groups_) {
          tickets_.push_back(t_.begin_write(g.stripe, g.items.size(), [&] { (void)erase_l1(g); }));
        }
      } catch (...) {
        end_rest();  // the tickets taken so far
        throw;
      }
    }
    ~BatchWrite() { end_rest(); }
    BatchWrite(const BatchWrite&) = delete;
    BatchWrite& operator=(const BatchWrite&) = delete;

    // finish: every group's L1 step, l1_step(group, sole), under its stripe
    // lock (finish_write).
    template <class L1Step>
    void finish(L1Step&& l1_step) {
      while (done_ < tickets_.size()) {
        const std::size_t gi = done_++;  // counted out before a step can throw
        t_.finish_write(tickets_[gi], groups_[gi].items.size(),
                        [&](bool sole) { l1_step(groups_[gi], sole); });
      }
    }

    // erase_l1: the group's keys erased from L1 (one batch call).
    absl::Status erase_l1(const StripeGroup& g) {
      std::vector<K> keys;
      keys.reserve(g.items.size());
      for (std::size_t i : g.items) keys.push_back(key_at_(i));
      return t_.l1_->erase_many(std::span<const K>(keys));
    }

   private:
    void end_rest() noexcept {
      while (done_ < tickets_.size()) {
        const std::size_t gi = done_++;
        t_.finish_write(tickets_[gi], groups_[gi].items.size(), [&](bool) {
          try {
            (void)erase_l1(groups_[gi]);
          } catch (...) {  // NOLINT(bugprone-empty-catch): best effort while unwinding
          }
        });
      }
    }

    TieredStore& t_;
    KeyAt key_at_;
    std::vector<StripeGroup> groups_;
    std::vector<Ticket> tickets_;
    std::size_t done_ = 0;
  };

  // write: put and fill without the publish: the L2 step, then the L1 step
  // (finish_write). When L2 failed, L1 keeps the copy only for a fill (a
  // value loaded from the system of record).
  absl::Status write(const K& key, Entry<V> entry, bool keep_l1_on_l2_error) {
    const Ticket t = begin_write(stripe_of(key), 1, [&] { (void)l1_->erase(key); });
    absl::Status s = l2_step(t, key, [&] { return l2_->put(key, entry); });
    absl::Status s1;
    finish_write(t, 1, [&](bool sole) {
      if (sole && (s.ok() || keep_l1_on_l2_error)) {
        s1 = l1_->put(key, cap(std::move(entry)));
        if (s1.ok()) return;
      }
      (void)l1_->erase(key);  // never leave the old copy behind
    });
    return s.ok() ? s1 : s;
  }

  // copy_to_l1: an L2 hit copied into L1, under the stripe lock, unless a
  // write of the stripe is in flight or a change overtook the L2 read (then
  // it is not copied: a later miss).
  void copy_to_l1(const K& key, const Entry<V>& entry, const Guard& guard) {
    Stripe& s = stripes_[guard.stripe];
    internal::MutexLock lock(&s.mu);
    if (s.in_flight != 0 || s.seq.load() != guard.seq) {
      fills_voided_.add();
      return;
    }
    if (!l1_->put(key, cap(entry)).ok()) (void)l1_->erase(key);
  }

  // clear_l1: every stripe's seq bumped (each under its lock), then L1
  // cleared: see "Fill guard".
  absl::Status clear_l1() {
    for (Stripe& s : stripes_) {
      internal::MutexLock lock(&s.mu);
      s.seq.fetch_add(1);
    }
    return l1_->clear();
  }

  Entry<V> cap(Entry<V> e) const {
    if (options_.l1_max_ttl.count() > 0) {
      const TimePoint limit = clock_->now() + options_.l1_max_ttl;
      e.stale_until = std::min(e.stale_until, limit);
      e.fresh_until = std::min(e.fresh_until, e.stale_until);
    }
    return e;
  }

  // ---- Bus ----
  // A publish that fails is remembered in unsent_ and sent again (see the
  // file comment): first by the next publish, else by resend_due() from the
  // read path. A newer publish of a key that succeeds settles its older
  // failure.
  void publish_key(const K& key) {
    if constexpr (kHasCodec) {
      if (bus_ == nullptr) return;
      std::string bytes;
      KeyCodec::encode(key, bytes);
      publish_bytes(std::span<const std::string>(&bytes, 1));
    } else {
      (void)key;
    }
  }

  template <class Each>
  void publish_keys(Each&& each) {
    if constexpr (kHasCodec) {
      if (bus_ == nullptr) return;
      std::vector<std::string> all;
      each([&](const K& k) {
        std::string bytes;
        KeyCodec::encode(k, bytes);
        all.push_back(std::move(bytes));
      });
      publish_bytes(std::span<const std::string>(all));
    } else {
      (void)each;
    }
  }

  void publish_bytes(std::span<const std::string> keys) {
    const auto mark = unsent_.mark(clock_->now());
    published_.add(keys.size());
    absl::Status s = keys.size() == 1 ? bus_->publish_from(origin_, keys[0])
                                      : bus_->publish_many_from(origin_, keys);
    if (s.ok()) {
      if (ABSL_PREDICT_FALSE(unsent_.any())) {
        for (const std::string& k : keys) unsent_.settle(k, mark);
        resend(/*wait_for_due=*/false);  // the bus takes messages again
      }
      return;
    }
    bus_error(s);
    publishes_deferred_.add(keys.size());
    for (const std::string& k : keys) unsent_.add(k, clock_->now());
    unsent_.failed(clock_->now());
    wake_later();
  }

  void publish_clear() {
    if (bus_ == nullptr) return;
    const auto mark = unsent_.mark(clock_->now());
    published_.add();
    absl::Status b = bus_->publish_clear_from(origin_);
    if (b.ok()) {
      unsent_.settle_all(mark);  // a clear covers every key sent before it
    } else if (b.code() != absl::StatusCode::kUnimplemented) {
      bus_error(b);
      publishes_deferred_.add();
      unsent_.add_clear();
      unsent_.failed(clock_->now());
      wake_later();
    }
  }

  // resend_due: from the read path, once the retry is due.
  void resend_due() { resend(/*wait_for_due=*/true); }

  // wake_later: unsent publishes are also re-sent without traffic, from the
  // scheduler (when there is one), at the back-off's pace. One wake-up is
  // outstanding at a time; the tether keeps it off a destroyed store.
  void wake_later() {
    if (scheduler_ == nullptr || waking_.exchange(true)) return;
    const TimePoint now = clock_->now();
    const bool ok = scheduler_->schedule(now + unsent_.delay(now), [this, tether = tether_] {
      tether->run([this] {
        waking_.store(false);
        resend_due();
        if (unsent_.any()) wake_later();
      });
    });
    if (!ok) waking_.store(false);
  }

  // resend: publishes what unsent_ holds (one caller at a time; the others
  // go on without waiting).
  void resend(bool wait_for_due) {
    if (bus_ == nullptr) return;
    if (wait_for_due && !unsent_.due(clock_->now())) return;
    if (!unsent_.try_begin()) return;
    for (int round = 0; round < 64 && unsent_.any(); ++round) {
      typename internal::PendingInvalidations<std::string>::Work w =
          unsent_.work(kResendBatch, clock_->now());
      if (!w.clear && w.keys.empty()) {
        unsent_.succeeded();
        break;
      }
      absl::Status s;
      if (w.clear) {
        s = bus_->publish_clear_from(origin_);
        if (s.code() == absl::StatusCode::kUnimplemented) s = absl::OkStatus();
      } else if (!w.keys.empty()) {
        s = bus_->publish_many_from(origin_, std::span<const std::string>(w.keys));
      }
      if (!s.ok()) {
        bus_error(s);
        unsent_.failed(clock_->now());
        wake_later();
        break;
      }
      publishes_resent_.add(w.clear ? 1 : w.keys.size());
      unsent_.done(w);
      unsent_.succeeded();
    }
    unsent_.end();
  }

  void bus_error(const absl::Status& s) {
    bus_errors_.add();
    internal::notify_user(options_.on_bus_error, s);  // a throw is swallowed (invoke.h)
  }

  void on_invalidate(std::string_view bytes) {
    if constexpr (kHasCodec) {
      absl::StatusOr<K> key = KeyCodec::decode(bytes);
      if (!key.ok()) {
        // A message from another keyspace (or version) on our channel: not
        // ours to act on. Reported, not acted on: wiping L1 for foreign
        // traffic would let anyone on the channel empty it at will.
        bus_error(absl::DataLossError(absl::StrCat(
            "TieredStore: invalidation for a key that does not decode: ", key.status().message())));
        return;
      }
      invalidations_.add();
      Stripe& s = stripes_[stripe_of_bytes(bytes)];
      internal::MutexLock lock(&s.mu);
      s.seq.fetch_add(1);
      (void)l1_->erase(*key);
    } else {
      (void)bytes;
    }
  }

  void on_gap() {
    gaps_.add();
    absl::Status s = clear_l1();
    if (!s.ok()) bus_error(s);
  }

  std::shared_ptr<Store<K, V>> l1_, l2_;
  std::shared_ptr<InvalidationBus> bus_;
  TieredStoreOptions options_;
  std::shared_ptr<Clock> clock_;
  InvalidationBus::Origin origin_;
  std::array<Stripe, kStripes> stripes_;
  static constexpr std::size_t kResendBatch = 1024;
  internal::PendingInvalidations<std::string> unsent_;  // key bytes whose publish failed
  const std::shared_ptr<Scheduler> scheduler_;          // null: calls drive the re-sends
  std::shared_ptr<internal::SchedulerTether> tether_ =
      std::make_shared<internal::SchedulerTether>();
  std::atomic<bool> waking_{false};  // a wake-up is scheduled
  internal::StripedCounter l1_hits_, l2_hits_, misses_, fills_voided_, published_, invalidations_,
      gaps_, bus_errors_, publishes_deferred_, publishes_resent_;
  // Last member: destroyed first, so callbacks stop before anything above goes.
  std::unique_ptr<InvalidationBus::Subscription> subscription_;
};

}  // namespace larder

// The common <K, V> (std::string or std::int64_t keys, std::string values) are
// instantiated once in larder::core (src/core/instances_tiered_store.cc); other types are
// instantiated where they are used, as usual. Define LARDER_NO_EXTERN_TEMPLATES to instantiate them
// in your own files too, e.g. when those are built with a sanitizer the library was not built with.
#ifndef LARDER_NO_EXTERN_TEMPLATES
namespace larder {
extern template class TieredStore<std::string, std::string>;
extern template class TieredStore<std::int64_t, std::string>;
}  // namespace larder
#endif  // LARDER_NO_EXTERN_TEMPLATES

#endif  // LARDER_TIERED_STORE_H_
