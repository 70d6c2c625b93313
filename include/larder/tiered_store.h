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
  std::uint64_t fills_voided = 0;        // L1 copies withdrawn because a concurrent write or
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
    absl::Status s = l2_->erase(key);
    bump(key);
    absl::Status s1 = l1_->erase(key);
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
    std::vector<std::pair<K, Entry<V>>> fills;
    std::vector<Guard> fill_guards;
    std::size_t found = 0;
    for (std::size_t j = 0; j < ask.size(); ++j) {
      std::optional<Entry<V>>& e = (*second)[j];
      if (!e.has_value()) continue;
      ++found;
      if (overtaken(guards[j])) {
        fills_voided_.add();  // not copied: see copy_to_l1
      } else {
        fills.emplace_back(ask[j], cap(*e));
        fill_guards.push_back(guards[j]);
      }
      out[missing[j]] = std::move(e);
    }
    l2_hits_.add(found);
    if (found != ask.size()) misses_.add(ask.size() - found);
    if (!fills.empty()) {
      (void)l1_->put_many(std::span<const std::pair<K, Entry<V>>>(fills));
      for (std::size_t j = 0; j < fills.size(); ++j)
        void_if_overtaken(fills[j].first, fill_guards[j]);
    }
    return out;
  }

  // put_many: L2's batch, then L1's, then publish every key. Returns L2's
  // error if any (then L1 holds none of the keys), else L1's.
  absl::Status put_many(std::span<const std::pair<K, Entry<V>>> entries) override {
    if (entries.empty()) return absl::OkStatus();
    std::vector<Guard> guards;
    guards.reserve(entries.size());
    for (const auto& kv : entries) guards.push_back(guard_for(kv.first));
    absl::Status s = l2_->put_many(entries);
    if (!s.ok()) {
      // Which keys L2 took is unknown: drop every copy here, as put() does.
      for (const auto& kv : entries) bump(kv.first);
      std::vector<K> keys;
      keys.reserve(entries.size());
      for (const auto& kv : entries) keys.push_back(kv.first);
      (void)l1_->erase_many(std::span<const K>(keys));
      publish_keys([&](auto&& emit) {
        for (const auto& kv : entries) emit(kv.first);
      });
      return s;
    }
    std::vector<std::pair<K, Entry<V>>> capped;
    std::vector<std::uint64_t> mine;
    capped.reserve(entries.size());
    mine.reserve(entries.size());
    for (std::size_t i = 0; i < entries.size(); ++i) {
      mine.push_back(seqs_[guards[i].stripe].fetch_add(1));
      capped.emplace_back(entries[i].first, cap(entries[i].second));
    }
    absl::Status s1 = l1_->put_many(std::span<const std::pair<K, Entry<V>>>(capped));
    if (!s1.ok()) {
      std::vector<K> keys;
      keys.reserve(entries.size());
      for (const auto& kv : entries) keys.push_back(kv.first);
      (void)l1_->erase_many(std::span<const K>(keys));
    } else {
      // Per stripe: the lowest guard, the lowest and highest bump of this
      // batch, and how many (keys of a batch sharing a stripe bump it for
      // each other; a foreign bump between two of their guards shows as a
      // lowest guard below the lowest bump).
      absl::flat_hash_map<std::size_t, std::array<std::uint64_t, 4>> per;
      for (std::size_t i = 0; i < entries.size(); ++i) {
        auto [it, inserted] = per.try_emplace(
            guards[i].stripe, std::array<std::uint64_t, 4>{guards[i].seq, mine[i], mine[i], 0});
        auto& p = it->second;
        p[0] = std::min(p[0], guards[i].seq);
        p[1] = std::min(p[1], mine[i]);
        p[2] = std::max(p[2], mine[i]);
        ++p[3];
      }
      for (std::size_t i = 0; i < entries.size(); ++i) {
        const auto& p = per[guards[i].stripe];
        Guard g = guards[i];
        g.seq = p[0];
        void_if_raced(entries[i].first, g, p[1], p[2], p[3]);
      }
    }
    publish_keys([&](auto&& emit) {
      for (const auto& kv : entries) emit(kv.first);
    });
    return s1;
  }

  // erase_many: L2's batch, then L1's, then publish every key.
  absl::Status erase_many(std::span<const K> keys) override {
    if (keys.empty()) return absl::OkStatus();
    absl::Status s = l2_->erase_many(keys);
    for (const K& k : keys) bump(k);
    absl::Status s1 = l1_->erase_many(keys);
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
    gap_.fetch_add(1);
    absl::Status s1 = l1_->clear();
    publish_clear();
    return s.ok() ? s1 : s;
  }

  std::shared_ptr<Clock> clock() const override { return clock_; }

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
                 "L1 copies withdrawn because a concurrent change may have overtaken them",
                 l.span(), c.fills_voided);
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
  // Invariant: an L1 copy made from an L2 read never survives an
  // invalidation of its key that arrived after the read began.
  // Scheme: seqs_ is an array of per-stripe counters (stripe = hash of the
  // key's codec bytes) and gap_ a global one. Every invalidation (received,
  // or this instance's own put/erase) increments the key's stripe *before*
  // erasing/overwriting L1; a gap or clear increments gap_ before clearing
  // L1. A fill snapshots (stripe, gap_) before reading L2, puts into L1, then
  // re-reads both: if either moved, it erases its copy. Either the
  // invalidation's L1 erase came after the fill's L1 put (and removed it), or
  // the increment happened before the put and so before the re-read (all
  // seq_cst, and L1's own lock orders put/erase), which then sees it.
  // This instance's own writes use the same guard (void_if_raced): two
  // writers of one key (here, or here and elsewhere) may reach L2 in one
  // order and this L1 in the other, so a write keeps its L1 copy only if its
  // own bumps are the only ones its stripe saw between the guard and the
  // check; otherwise it erases the copy. Invariant, once every message is
  // delivered and no call is in flight: every L1 copy equals L2's entry
  // (tiered_store_test's concurrent test checks exactly that). The one
  // deliberate exception: a fill whose L2 write failed keeps its L1 copy
  // (a value just loaded from the system of record).
  // Cost: two seq_cst loads around each fill, one increment per write; a
  // collision on a stripe only voids a copy (a later miss), never keeps a
  // stale one. Without a codec (so without a bus) all keys share stripe 0:
  // still correct for this instance's own writes.
  static constexpr bool kHasCodec = internal::has_key_codec<K, KeyCodec>();
  static constexpr std::size_t kStripes = 256;

  struct Guard {
    std::size_t stripe;
    std::uint64_t seq;
    std::uint64_t gap;
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

  Guard guard_for(const K& key) const {
    const std::size_t st = stripe_of(key);
    return Guard{st, seqs_[st].load(), gap_.load()};
  }

  void bump(const K& key) { seqs_[stripe_of(key)].fetch_add(1); }

  // write: put and fill without the publish. L2 first, then L1 under the
  // fill guard (void_if_raced). When L2 failed, L1 keeps the copy only for a
  // fill (a value loaded from the system of record).
  absl::Status write(const K& key, Entry<V> entry, bool keep_l1_on_l2_error) {
    const Guard guard = guard_for(key);
    absl::Status s = l2_->put(key, entry);
    const std::uint64_t mine = seqs_[guard.stripe].fetch_add(1);
    if (!s.ok() && !keep_l1_on_l2_error) {
      (void)l1_->erase(key);
      return s;
    }
    absl::Status s1 = l1_->put(key, cap(std::move(entry)));
    if (!s1.ok()) {
      (void)l1_->erase(key);  // never leave the old copy behind
    } else {
      void_if_raced(key, guard, mine, mine, 1);
    }
    return s.ok() ? s1 : s;
  }

  // copy_to_l1: an L2 hit copied into L1, withdrawn if an invalidation of key
  // may have overtaken the L2 read. Not copied at all when one already has
  // (the usual race: a write during the L2 read). What is left is the narrow
  // window between the L1 put and the re-check, in which a reader of L1 can
  // see the older value after a racing write's newer one (no monotonic reads
  // while writers race with fills; every L1 copy still equals L2 once calls
  // settle: the invariant above).
  void copy_to_l1(const K& key, const Entry<V>& entry, const Guard& guard) {
    if (overtaken(guard)) {
      fills_voided_.add();
      return;
    }
    if (!l1_->put(key, cap(entry)).ok()) {
      (void)l1_->erase(key);
      return;
    }
    void_if_overtaken(key, guard);
  }

  // void_if_raced: after this instance's own write of key put a copy in L1.
  // The key's stripe was bumped by this write (and, in a batch, by others
  // of the batch on the same stripe): n bumps that returned lo..hi. If
  // anything else moved the stripe since the guard was taken (a concurrent
  // writer here, an invalidation from another instance) or a gap came, the
  // two writes may be ordered differently in L2 than in L1, so the copy is
  // withdrawn: a later miss instead of a possibly stale copy.
  void void_if_raced(const K& key, const Guard& guard, std::uint64_t lo, std::uint64_t hi,
                     std::uint64_t n) {
    const bool only_ours = lo == guard.seq && hi - lo + 1 == n &&
                           seqs_[guard.stripe].load() == hi + 1 && gap_.load() == guard.gap;
    if (!only_ours) {
      fills_voided_.add();
      (void)l1_->erase(key);
    }
  }

  bool overtaken(const Guard& guard) const {
    return seqs_[guard.stripe].load() != guard.seq || gap_.load() != guard.gap;
  }

  void void_if_overtaken(const K& key, const Guard& guard) {
    if (overtaken(guard)) {
      fills_voided_.add();
      (void)l1_->erase(key);
    }
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
      seqs_[stripe_of_bytes(bytes)].fetch_add(1);
      (void)l1_->erase(*key);
    } else {
      (void)bytes;
    }
  }

  void on_gap() {
    gaps_.add();
    gap_.fetch_add(1);
    absl::Status s = l1_->clear();
    if (!s.ok()) bus_error(s);
  }

  std::shared_ptr<Store<K, V>> l1_, l2_;
  std::shared_ptr<InvalidationBus> bus_;
  TieredStoreOptions options_;
  std::shared_ptr<Clock> clock_;
  InvalidationBus::Origin origin_;
  std::array<std::atomic<std::uint64_t>, kStripes> seqs_{};
  std::atomic<std::uint64_t> gap_{0};
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
