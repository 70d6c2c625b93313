// SPDX-License-Identifier: Apache-2.0
//
// Refresher<K, V>: background refreshes (stale-while-revalidate and
// refresh-ahead), one key at a time (get_or_load) or as one batch-loader call
// (get_many).
//
// A refresh is a flight like a load (single_flight.h): a hit that wants a
// refresh joins the key's flight and starts one only if it leads it, so a
// key being loaded or refreshed is never refreshed twice. The task runs on
// the executor through TaskGate::submit (task_gate.h); a refused task is
// counted (refreshes_dropped) and its flight finished with the value the
// caller already has. The refreshed value is stored as a fill when it equals
// the current one (same_value) and as a put (a change other instances hear
// about) otherwise.
//
// A failed refresh (not NotFound) pauses the key's refreshes for
// error_backoff (CacheState::pause_refresh, an ExpiringKeySet consulted only
// once some refresh failed): hits keep the value, the failing source gets one
// call per key per back-off, not one per hit. NotFound means the key is gone
// from the system of record: its entry is dropped. Failures are counted and
// offered to on_refresh_error (invoke.h: a throw is swallowed).
//
// Thread-safety: every method may be called concurrently.
#ifndef LARDER_INTERNAL_REFRESHER_H_
#define LARDER_INTERNAL_REFRESHER_H_

#include <concepts>
#include <cstddef>
#include <memory>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "larder/internal/cache_state.h"
#include "larder/internal/invoke.h"
#include "larder/internal/loads.h"
#include "larder/internal/recovery.h"

namespace larder::internal {

// same_value: whether a refresh found the value the cache already had (then
// storing it is a fill, not a change: store.h). shared_ptr<const T> compares
// the pointees. A V that cannot be compared counts as unchanged.
template <class T>
struct IsSharedPtr : std::false_type {};
template <class T>
struct IsSharedPtr<std::shared_ptr<T>> : std::true_type {};

template <class V>
bool same_value(const V& a, const V& b) {
  if constexpr (IsSharedPtr<V>::value) {
    if constexpr (std::equality_comparable<typename V::element_type>) {
      return a == b || (a != nullptr && b != nullptr && *a == *b);
    } else {
      return a == b;
    }
  } else if constexpr (std::equality_comparable<V>) {
    return a == b;
  } else {
    return true;
  }
}

template <class K, class V>
class Refresher {
 public:
  using Map = absl::flat_hash_map<K, V>;
  using FlightPtr = std::shared_ptr<Flight<V>>;

  Refresher(CacheState<K, V>& s, Recovery<K, V>& recovery, Loads<K, V>& loads)
      : s_(s), recovery_(recovery), loads_(loads) {}

  // start: one background refresh of key (current: the entry a hit found).
  template <class Loader>
  void start(const K& key, Loader& loader, const Entry<V>& current, TimePoint now);

  // start_batch: one background batch-loader call refreshing items (keys
  // with the entries hits found); keys paused or already in flight skipped.
  template <class BatchLoader>
  void start_batch(std::vector<std::pair<K, Entry<V>>> items, BatchLoader& load, TimePoint now) {
    static_assert(std::is_copy_constructible_v<std::decay_t<BatchLoader>>,
                  "a BatchLoader must be copyable: background refreshes keep a copy");
    auto batch = std::make_shared<Batch>();
    for (auto& [k, e] : items) {
      if (s_.refresh_paused_for(k, now)) continue;
      typename SingleFlight<K, V>::Joined j = s_.flights.join(k);
      if (!j.leader) continue;
      batch->keys.push_back(k);
      batch->flights.push_back(std::move(j.flight));
      batch->current.push_back(std::move(e));
    }
    if (batch->keys.empty()) return;
    auto fn = std::make_shared<std::decay_t<BatchLoader>>(load);
    const bool queued = s_.tasks.submit([this, fn, batch] { run_batch(*fn, *batch); },
                                        [this, batch] {
                                          for (std::size_t i = 0; i < batch->keys.size(); ++i) {
                                            loads_.cancel(batch->keys[i], batch->flights[i]);
                                          }
                                        });
    const std::size_t n = batch->keys.size();
    if (!queued) {
      s_.counters.refreshes_dropped.add(n);
      for (std::size_t i = 0; i < n; ++i) {
        s_.flights.finish(batch->keys[i], batch->flights[i], batch->current[i].value);
      }
      return;
    }
    s_.counters.refreshes.add(n);
  }

 private:
  struct Batch {
    std::vector<K> keys;
    std::vector<FlightPtr> flights;
    std::vector<Entry<V>> current;
  };

  template <class Loader>
  void run(const K& key, Loader& loader, const FlightPtr& flight, Entry<V> current) {
    // A reader may have seen the stale entry just before the previous refresh
    // published and started this one just after it finished: if the entry is
    // fresh (and short of the refresh-ahead point) now, there is nothing to do.
    if (!recovery_.is_suspect(key)) {
      absl::StatusOr<std::optional<Entry<V>>> got = s_.store->get(key);
      if (got.ok() && got->has_value() &&
          s_.fresh.classify(**got, s_.fresh.now()) == Action::kFresh) {
        s_.flights.finish(key, flight, std::move((*got)->value));
        return;
      }
    }
    s_.counters.refreshes.add();
    std::unique_ptr<LoadLease> lease;
    if (s_.opt.load_guard) {
      absl::StatusOr<std::unique_ptr<LoadLease>> acquired = s_.opt.load_guard->try_acquire(key);
      if (acquired.ok() && *acquired == nullptr) {
        // Another process is refreshing key; its value will reach the store.
        s_.flights.finish(key, flight, std::move(current.value));
        return;
      }
      if (acquired.ok()) lease = *std::move(acquired);
    }
    const auto t0 = s_.latency.start();
    absl::StatusOr<V> r = invoke_loader<V>(loader, key);
    CacheLatency::record(s_.latency.load, t0);
    finish_refresh(key, flight, current, std::move(r), s_.fresh.now());
    lease.reset();  // after publishing: a waiting process then finds the value
  }

  template <class BatchLoader>
  void run_batch(BatchLoader& load, Batch& b) {
    const std::size_t n = b.keys.size();
    const auto t0 = s_.latency.start();
    absl::StatusOr<Map> r = invoke_batch_loader<K, V>(load, std::span<const K>(b.keys));
    CacheLatency::record(s_.latency.batch_load, t0);
    const TimePoint now = s_.fresh.now();
    if (r.ok()) {
      s_.counters.loads.add();
      for (std::size_t i = 0; i < n; ++i) {
        auto it = r->find(b.keys[i]);
        if (it != r->end()) {
          const bool changed = !same_value(b.current[i].value, it->second);
          loads_.deliver(b.flights[i], b.keys[i], std::move(it->second), now, changed);
        } else {
          loads_.deliver_absent(b.flights[i], b.keys[i], now);
        }
      }
      return;
    }
    s_.counters.load_failures.add();
    s_.counters.refresh_failures.add(n);
    for (std::size_t i = 0; i < n; ++i) {
      if (r.status().code() != absl::StatusCode::kNotFound) s_.pause_refresh(b.keys[i], now);
      s_.flights.finish(b.keys[i], b.flights[i], r.status());
    }
    for (std::size_t i = 0; i < n; ++i) notify_user(s_.opt.on_refresh_error, b.keys[i], r.status());
  }

  // finish_refresh: a single-key refresh's result: delivered, or counted,
  // paused (not NotFound) or dropped (NotFound), finished and reported.
  void finish_refresh(const K& key, const FlightPtr& flight, const Entry<V>& current,
                      absl::StatusOr<V> r, TimePoint now) {
    if (r.ok()) {
      s_.counters.loads.add();
      const bool changed = !same_value(current.value, *r);
      loads_.deliver(flight, key, *std::move(r), now, changed);
      return;
    }
    s_.counters.load_failures.add();
    s_.counters.refresh_failures.add();
    // NotFound: the key is gone from the system of record; stop serving it.
    // Any other error: the stale value stays until its stale_until.
    if (r.status().code() == absl::StatusCode::kNotFound) {
      loads_.publish_absent(flight, key, now);
    } else {
      s_.pause_refresh(key, now);
    }
    s_.flights.finish(key, flight, r.status());
    notify_user(s_.opt.on_refresh_error, key, r.status());
  }

  CacheState<K, V>& s_;
  Recovery<K, V>& recovery_;
  Loads<K, V>& loads_;
};

// Refresher::start: out of line and not inline, so that the instantiation for
// the bound loader of the common <K, V> is compiled once in larder::core
// (cache_core.h declares it `extern template`).
template <class K, class V>
template <class Loader>
void Refresher<K, V>::start(const K& key, Loader& loader, const Entry<V>& current, TimePoint now) {
  static_assert(std::is_copy_constructible_v<std::decay_t<Loader>>,
                "a Loader must be copyable: background refreshes keep a copy");
  if (s_.refresh_paused_for(key, now)) return;
  typename SingleFlight<K, V>::Joined j = s_.flights.join(key);
  if (!j.leader) return;  // a load or refresh of key is already running
  auto fn = std::make_shared<std::decay_t<Loader>>(loader);
  const bool queued =
      s_.tasks.submit([this, key, fn, flight = j.flight,
                       current]() mutable { run(key, *fn, flight, std::move(current)); },
                      [this, key, flight = j.flight] { loads_.cancel(key, flight); });
  if (!queued) {
    s_.counters.refreshes_dropped.add();
    s_.flights.finish(key, j.flight, current.value);  // joiners get what we have
  }
}

}  // namespace larder::internal

#endif  // LARDER_INTERNAL_REFRESHER_H_
