// SPDX-License-Identifier: Apache-2.0
//
// Store<K, V>: the small storage interface under Cache<K, V>.
//
// A store keeps entries: a value with two instants, `fresh_until` and
// `stale_until` (see Entry below). It knows nothing
// of loaders, refreshes or write modes; Cache does. Stores: LocalStore (in
// process), RedisStore (Redis through hiredis), TieredStore (L1 + L2).
//
// Contract every store keeps (tests/testing/store_contract.h checks it for each):
//   * get() is tri-state: an error Status (the store could not answer),
//     std::nullopt (a miss), or the entry (a hit). An error is never disguised
//     as a miss, and a miss never as an error.
//   * An entry whose stale_until has passed (by the store's clock) is never
//     returned: it is a miss. A stale entry (fresh_until <= now < stale_until)
//     is returned; deciding what to do with it is the cache's business.
//   * put() replaces any previous entry for the key; erase() of an absent key is OK.
//     fill() is put() for a value loaded from the system of record (not a change).
//   * Values are returned by value (copies); no reference into the store escapes.
//   * Batch forms behave like the loop over the single forms; stores that can
//     do better (one MGET, one pipeline) override them.
//   * Every method may be called concurrently from any number of threads.
//
// Example:
//
//   std::shared_ptr<larder::Store<std::string, int>> store =
//       std::make_shared<larder::LocalStore<std::string, int>>();
//   auto now = larder::system_clock()->now();
//   (void)store->put("a", {1, now + std::chrono::seconds(10), now + std::chrono::seconds(20)});
//   absl::StatusOr<std::optional<larder::Entry<int>>> got = store->get("a");
#ifndef LARDER_STORE_H_
#define LARDER_STORE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "larder/clock.h"
#include "larder/metric.h"

namespace larder {

// Age: where an entry stands on its timeline at a given instant.
//   written ---- fresh_until ---- stale_until ---->
//     kFresh          kStale              kExpired
enum class Age { kFresh, kStale, kExpired };

// Entry: a stored value and its two instants. Invariant kept by writers:
// fresh_until <= stale_until.
template <class V>
struct Entry {
  V value;
  TimePoint fresh_until{};
  TimePoint stale_until{};

  // age: kFresh before fresh_until, kStale before stale_until, then kExpired.
  Age age(TimePoint now) const {
    if (now < fresh_until) return Age::kFresh;
    if (now < stale_until) return Age::kStale;
    return Age::kExpired;
  }
};

// StoreCounters: what a store has counted since construction (monotonic),
// plus its occupancy now. A store that does not count something leaves it 0.
struct StoreCounters {
  std::uint64_t hits = 0;         // get() answered with an entry
  std::uint64_t misses = 0;       // get() answered nullopt
  std::uint64_t evictions = 0;    // entries dropped to respect a bound
  std::uint64_t expirations = 0;  // entries dropped because stale_until passed
  std::uint64_t errors = 0;       // operations that failed, and values that did not decode
  std::uint64_t size = 0;         // entries held now (best effort for remote stores)
  std::uint64_t weight = 0;       // total weight held now (0 without a weigher)
};

namespace internal {
// report_store_counters: c as larder_store_* metrics with labels (metrics.h).
void report_store_counters(const StoreCounters& c, std::span<const MetricLabel> labels,
                           MetricCallback out);
}  // namespace internal

// Store: the abstract storage interface. See the file comment for the contract.
template <class K, class V>
class Store {
 public:
  using key_type = K;
  using value_type = V;
  using entry_type = Entry<V>;

  virtual ~Store() = default;

  // get: the live entry for key, std::nullopt when absent or expired, or an
  // error Status when the store could not answer (kUnavailable: store down;
  // kDeadlineExceeded: it did not answer in time).
  virtual absl::StatusOr<std::optional<Entry<V>>> get(const K& key) = 0;

  // put: stores entry under key, replacing what was there. An entry already
  // expired may be dropped at once.
  virtual absl::Status put(const K& key, Entry<V> entry) = 0;

  // erase: removes key. OK when it was absent.
  virtual absl::Status erase(const K& key) = 0;

  // fill: stores entry under key like put(), for an entry that is not a
  // change: a value the cache just loaded from the system of record (a miss,
  // a refresh that found the same value, a stale-if-error fallback kept a
  // while longer). Stores that tell other instances about changes
  // (TieredStore's InvalidationBus) do not announce a fill: another
  // instance's copy of the same key is as current as this one, and dropping
  // it would turn every cold load into an invalidation storm. Default: put().
  virtual absl::Status fill(const K& key, Entry<V> entry) { return put(key, std::move(entry)); }

  // get_many: one result per key, in order. The default loops over get() and
  // fails as a whole on the first error; stores with a batch command override it.
  virtual absl::StatusOr<std::vector<std::optional<Entry<V>>>> get_many(std::span<const K> keys) {
    std::vector<std::optional<Entry<V>>> out;
    out.reserve(keys.size());
    for (const K& k : keys) {
      absl::StatusOr<std::optional<Entry<V>>> got = get(k);
      if (!got.ok()) return std::move(got).status();
      out.push_back(*std::move(got));
    }
    return out;
  }

  // put_many: stores every pair. The default loops over put(); the first error
  // is returned after trying all of them.
  virtual absl::Status put_many(std::span<const std::pair<K, Entry<V>>> entries) {
    absl::Status first;
    for (const auto& [k, e] : entries) {
      absl::Status s = put(k, e);
      if (!s.ok() && first.ok()) first = std::move(s);
    }
    return first;
  }

  // erase_many: removes every key. The default loops over erase().
  virtual absl::Status erase_many(std::span<const K> keys) {
    absl::Status first;
    for (const K& k : keys) {
      absl::Status s = erase(k);
      if (!s.ok() && first.ok()) first = std::move(s);
    }
    return first;
  }

  // clear: removes every entry this store holds (for a RedisStore: every key
  // under its key_prefix). kUnimplemented where a store cannot.
  virtual absl::Status clear() {
    return absl::UnimplementedError("this store does not support clear()");
  }

  // counters: what the store has counted; see StoreCounters. Cheap.
  virtual StoreCounters counters() const { return {}; }

  // for_each_metric: this store's metrics (metric.h), each labelled with
  // `labels` plus store="<store_label>". The default reports counters();
  // stores made of stores (TieredStore) or over a client (RedisStore) add
  // theirs. Called by larder::for_each_metric (metrics.h).
  virtual void for_each_metric(std::span<const MetricLabel> labels, std::string_view store_label,
                               MetricCallback out) const {
    const internal::MetricLabels<8> l(labels, {{"store", store_label}});
    internal::report_store_counters(counters(), l.span(), out);
  }

  // clock: the clock the store judges ages by; null when it reads none.
  // A Cache over the store takes it as its own when CacheOptions::clock is
  // null, and refuses a different one. A store that returns a clock keeps
  // the contract above by it (nothing past stale_until is returned): a
  // Cache then takes an entry without a stale span (fresh_until ==
  // stale_until) as fresh without reading the clock again. A store that does
  // not check ages returns null, and the Cache judges every entry itself.
  virtual std::shared_ptr<Clock> clock() const { return nullptr; }

  // set_capacity: changes the store's bound at runtime and evicts down to
  // it (LocalStore::set_capacity has the details); Cache::set_capacity
  // reaches it. kUnimplemented (the default) for a store without a bound of
  // its own (RedisStore: the server's maxmemory is the bound).
  virtual absl::Status set_capacity(std::uint64_t bound) {
    (void)bound;
    return absl::UnimplementedError("this store has no bound to change (set_capacity)");
  }
};

}  // namespace larder

#endif  // LARDER_STORE_H_
