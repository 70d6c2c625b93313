// SPDX-License-Identifier: Apache-2.0
//
// CacheCore<K, V>: everything behind a Cache (cache.h), owned through a
// shared_ptr so that background tasks can keep it alive (task_gate.h). It
// validates the options, wires the parts and runs the read path; the logic
// lives in the parts, each in its own header with its own essay:
//
//   CacheState   store, options, counters, flights, gate, key sets   cache_state.h
//   Freshness    ages: fresh / refresh-ahead / stale / expired        freshness.h
//   Recovery     deferred drops the store could not apply             recovery.h
//   Loads        single-flight loads, fallback, get_many's steps      loads.h
//   Refresher    background refreshes                                 refresher.h
//   Writes       put / erase / invalidate, turns, write-back          writes.h
//   TaskGate     background tasks that must not outlive the cache     task_gate.h
//   invoke.h     the one policy for calling user code
//
//   Cache ──shared_ptr──> CacheCore ──by value──> state_, recovery_, writes_, loads_, refresher_
//                              ^                      (parts hold references to state_
//   executor task ──shared_ptr─┘                       and to the parts built before them)
//
// The read path (get_or_load, get_if_present, get_many):
//
//   dirty in the write-back? ──yes──> its pending value (or NotFound)
//        │ no
//   pending drop (recovery)? ──yes──> treated as a store miss
//        │ no
//   Store::get ──> Freshness::classify ──> hit / hit + Refresher::start /
//                                          Loads::load_one (with the stale entry or none)
//
// A hit (fresh entry) costs one Store::get and one per-thread counter
// increment (no locked instruction), plus one relaxed load each for the
// write-back filter (kWriteBack only) and the recovery set. It reads no
// clock when the store judged the entry already (a store with a clock never
// returns an entry past stale_until, and an entry without a stale span is
// then fresh: Freshness::fresh_as_returned); otherwise, and on every other
// path, one read_now() after Store::get (before it when recovery is pending,
// whose check needs the instant).
//
// Shutdown (~Cache): stop_write_back (drain), repair_now (one last attempt at
// deferred drops), close (tasks that start later only cancel; waits for the
// running ones).
#ifndef LARDER_INTERNAL_CACHE_CORE_H_
#define LARDER_INTERNAL_CACHE_CORE_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/attributes.h"
#include "absl/base/optimization.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "larder/executor.h"
#include "larder/internal/cache_state.h"
#include "larder/internal/loads.h"
#include "larder/internal/recovery.h"
#include "larder/internal/refresher.h"
#include "larder/internal/task_gate.h"
#include "larder/internal/writes.h"
#include "larder/stats.h"
#include "larder/store.h"

namespace larder::internal {

template <class K, class V>
class CacheCore : public TaskOwner {
 public:
  using Map = absl::flat_hash_map<K, V>;

  // executor: owned by the Cache, not by the core (see Cache::executor_).
  // Throws std::invalid_argument for bad options (validate()).
  CacheCore(std::shared_ptr<Store<K, V>> store, CacheOptions<K, V> options, Executor* executor)
      : state_((validate(store, options), std::move(store)), std::move(options), this, executor),
        recovery_(state_),
        loads_(state_, recovery_),
        refresher_(state_, recovery_, loads_),
        writes_(state_, recovery_) {}

  // ---- reads ----

  template <class Loader>
  absl::StatusOr<V> get_or_load(const K& key, Loader& loader) {
    if (writes_.write_back()) {
      if (std::optional<std::optional<V>> p = writes_.dirty_value(key)) {
        if (*p) return **std::move(p);
        return erased();
      }
    }
    if (ABSL_PREDICT_FALSE(!state_.store_judges_expiry || recovery_.any())) {
      const TimePoint now = state_.fresh.read_now();
      if (ABSL_PREDICT_FALSE(recovery_.any()) && recovery_.suspect(key, now)) {
        return loads_.load_one(key, loader, std::nullopt, now);
      }
      return answer(key, loader, timed_get(key), now);
    }
    absl::StatusOr<std::optional<Entry<V>>> got = timed_get(key);
    if (ABSL_PREDICT_TRUE(judged_fresh_hit(got))) return std::move((*got)->value);
    return answer(key, loader, std::move(got), state_.fresh.read_now());
  }

  std::optional<V> get_if_present(const K& key) {
    if (writes_.write_back()) {
      if (std::optional<std::optional<V>> p = writes_.dirty_value(key)) return *std::move(p);
    }
    if (ABSL_PREDICT_FALSE(!state_.store_judges_expiry || recovery_.any())) {
      const TimePoint now = state_.fresh.read_now();
      if (ABSL_PREDICT_FALSE(recovery_.any()) && recovery_.suspect(key, now)) {
        state_.counters.misses.add();
        return std::nullopt;
      }
      return answer_if_present(timed_get(key), now);
    }
    absl::StatusOr<std::optional<Entry<V>>> got = timed_get(key);
    if (ABSL_PREDICT_TRUE(judged_fresh_hit(got))) return std::move((*got)->value);
    return answer_if_present(std::move(got), state_.fresh.read_now());
  }

  // get_many: the script (loads.h explains each step).
  template <class BatchLoader>
  GetManyResult<K, V> get_many(std::span<const K> keys, BatchLoader& load) {
    typename Loads<K, V>::Answers a;
    a.out.reserve(keys.size());
    ReadMany r =
        read_many(keys, [&a](std::size_t, const K& k, V&& v) { a.out.emplace(k, std::move(v)); });
    load_needed(r, a, load);
    absl::Status first = a.first_error ? *std::move(a.first_error) : absl::OkStatus();
    return GetManyResult<K, V>(std::move(a.out), std::move(a.errors), std::move(first));
  }

  // get_many_aligned: get_many's script, answered slot by slot (see
  // Cache::get_many_aligned). Hits are moved straight into their slots; only
  // the keys that needed a load go through the Answers map, and a repeated
  // key's slot is copied from its first one at the end.
  template <class BatchLoader>
  GetManyAlignedResult<V> get_many_aligned(std::span<const K> keys, BatchLoader& load) {
    using Result = GetManyAlignedResult<V>;
    typename Result::Values values(keys.size());
    ReadMany r =
        read_many(keys, [&values](std::size_t i, const K&, V&& v) { values[i] = std::move(v); });
    typename Loads<K, V>::Answers a;
    load_needed(r, a, load);
    std::vector<typename Result::KeyError> errors;
    for (std::size_t i : r.need_at) {
      if (auto it = a.out.find(keys[i]); it != a.out.end()) {
        values[i] = std::move(it->second);
      } else if (auto e = a.errors.find(keys[i]); e != a.errors.end()) {
        errors.push_back({i, e->second});
      }
    }
    absl::Status first = a.first_error ? *std::move(a.first_error) : absl::OkStatus();
    if (!r.repeats.empty()) {
      // errors[0, n) are in slot order (r.need_at is): a repeat finds its
      // first slot's error by binary search.
      const std::size_t n = errors.size();
      auto by_index = [](const typename Result::KeyError& x, std::size_t at) {
        return x.index < at;
      };
      for (auto [i, at] : r.repeats) {
        values[i] = values[at];
        auto e = std::lower_bound(errors.begin(), errors.begin() + n, at, by_index);
        if (e != errors.begin() + n && e->index == at) errors.push_back({i, e->status});
      }
      if (errors.size() != n) {
        std::sort(errors.begin(), errors.end(),
                  [](const auto& x, const auto& y) { return x.index < y.index; });
      }
    }
    return Result(std::move(values), std::move(errors), std::move(first));
  }

  // refresh: a load of key now (joining one in flight), stored; see
  // Cache::refresh.
  template <class Loader>
  absl::StatusOr<V> refresh(const K& key, Loader& loader) {
    if (writes_.write_back()) {
      if (std::optional<std::optional<V>> p = writes_.dirty_value(key)) {
        if (*p) return **std::move(p);
        return erased();
      }
    }
    state_.forget(key);
    typename SingleFlight<K, V>::Joined j = state_.flights.join(key);
    if (!j.leader) {
      state_.counters.coalesced.add();
      return detach_result(j.flight->wait());
    }
    return loads_.run_load(key, loader, std::nullopt, j.flight);
  }

  // compute: see Cache::compute. The current value is read under key's turn:
  // the write-back's pending value, else the store's (fresh or stale), else
  // the bound loader's; NotFound reads as nullopt.
  template <class Fn>
  absl::StatusOr<std::optional<V>> compute(const K& key, Fn& fn) {
    auto read = [&]() -> absl::StatusOr<std::optional<V>> {
      if (state_.opt.loader) {
        absl::StatusOr<V> r = get_or_load(key, state_.opt.loader);
        if (r.ok()) return std::optional<V>(*std::move(r));
        if (absl::IsNotFound(r.status())) return std::optional<V>();
        return r.status();
      }
      return current_value(key);
    };
    return writes_.compute(key, read, fn);
  }

  std::uint64_t estimated_size() const { return state_.store->counters().size; }
  absl::Status set_capacity(std::uint64_t bound) { return state_.store->set_capacity(bound); }

  // ---- writes (writes.h) ----

  absl::Status put(const K& key, V value) { return writes_.put(key, std::move(value)); }
  absl::Status erase(const K& key) { return writes_.erase(key); }
  absl::Status invalidate(const K& key) { return writes_.invalidate(key); }
  absl::Status invalidate_all() { return writes_.invalidate_all(); }
  absl::Status flush() { return writes_.flush(); }

  // ---- shutdown, in this order (see the file comment) ----
  void stop_write_back() { writes_.stop_write_back(); }
  void repair_now() { recovery_.repair_now(); }
  void close() { state_.tasks.close(); }

  CacheStats stats() const {
    const CacheCounters& c = state_.counters;
    CacheStats st;
    st.hits = c.hits.load();
    st.misses = c.misses.load();
    st.stale_hits = c.stale_hits.load();
    st.loads = c.loads.load();
    st.load_failures = c.load_failures.load();
    st.coalesced = c.coalesced.load();
    st.refreshes = c.refreshes.load();
    const StoreCounters sc = state_.store->counters();
    st.evictions = sc.evictions;
    st.expirations = sc.expirations;
    st.store_errors = c.store_errors.load();
    st.writes = c.writes.load();
    st.write_failures = c.write_failures.load();
    writes_.add_stats(st);
    st.refreshes_dropped = c.refreshes_dropped.load();
    st.refresh_failures = c.refresh_failures.load();
    st.negative_hits = c.negative_hits.load();
    st.load_timeouts = c.load_timeouts.load();
    st.invalidations_deferred = c.invalidations_deferred.load();
    st.invalidations_reapplied = c.invalidations_reapplied.load();
    st.invalidations_pending = recovery_.pending_count();
    return st;
  }

  const CacheOptions<K, V>& options() const { return state_.opt; }
  WriteBack<K, V>* write_back_queue() { return writes_.write_back_queue(); }

  // For metrics.h: the state (store, latency histograms) and the write-back.
  const CacheState<K, V>& state() const { return state_; }
  const WriteBack<K, V>* write_back_queue() const { return writes_.write_back_queue(); }

 private:
  // get_many's first step: duplicates dropped, dirty keys answered by the
  // write-back, one Store::get_many, each entry classified. The common batch
  // (no key repeated, none dirty) is read straight from the caller's span:
  // only a key that repeats or is dirty makes a copy of the rest. Every value
  // found goes to sink(slot, key, value), slot being the key's index in
  // `keys`; a repeated key's slot is listed in `repeats` (with the slot of
  // its first occurrence) and a key to load's in `need_at`.
  struct ReadMany {
    std::vector<typename Loads<K, V>::Need> need;
    std::vector<std::size_t> need_at;
    std::vector<std::pair<std::size_t, std::size_t>> repeats;
    std::vector<std::pair<K, Entry<V>>> to_refresh;
    TimePoint now;
  };
  template <class Sink>
  ReadMany read_many(std::span<const K> keys, Sink&& sink) {
    ReadMany r;
    std::span<const K> uniq = keys;
    std::vector<K> picked;        // the keys to read, once `keys` itself will not do
    std::vector<std::size_t> at;  // and their slots
    {
      RepeatFilter seen(keys);
      bool copying = false;
      for (std::size_t i = 0; i < keys.size(); ++i) {
        const K& k = keys[i];
        const std::size_t first = seen.first(i);
        bool skip = first != i;
        if (skip) r.repeats.emplace_back(i, first);
        if (!skip && writes_.write_back()) {
          // Dirty keys are answered by the write-back (a pending erase: absent).
          if (std::optional<std::optional<V>> p = writes_.dirty_value(k)) {
            if (*p) sink(i, k, **std::move(p));
            skip = true;
          }
        }
        if (copying) {
          if (!skip) {
            picked.push_back(k);
            at.push_back(i);
          }
        } else if (skip) {
          copying = true;
          picked.reserve(keys.size());
          picked.assign(keys.begin(), keys.begin() + static_cast<std::ptrdiff_t>(i));
          at.reserve(keys.size());
          for (std::size_t j = 0; j < i; ++j) at.push_back(j);
        }
      }
      if (copying) uniq = std::span<const K>(picked);
    }
    if (uniq.empty()) return r;
    auto slot = [&](std::size_t i) { return at.empty() ? i : at[i]; };

    r.now = state_.fresh.read_now();
    std::vector<std::optional<Entry<V>>> entries;
    {
      auto got = state_.store->get_many(uniq);
      if (got.ok() && got->size() == uniq.size()) {
        entries = *std::move(got);
      } else {
        state_.counters.store_errors.add();
        entries.resize(uniq.size());
      }
      recovery_.forget_suspects(uniq, entries, r.now);
    }
    // Counted once per batch (the same totals as one add per key).
    std::uint64_t hits = 0, stale_hits = 0;
    for (std::size_t i = 0; i < uniq.size(); ++i) {
      std::optional<Entry<V>>& e = entries[i];
      switch (e ? state_.fresh.classify(*e, r.now) : Action::kExpired) {
        case Action::kFresh:
          ++hits;
          sink(slot(i), uniq[i], std::move(e->value));
          break;
        case Action::kRefreshAhead:
          ++hits;
          r.to_refresh.emplace_back(uniq[i], *e);
          sink(slot(i), uniq[i], std::move(e->value));
          break;
        case Action::kStaleServe:
          ++stale_hits;
          r.to_refresh.emplace_back(uniq[i], *e);
          sink(slot(i), uniq[i], std::move(e->value));
          break;
        case Action::kStaleLoad:
          r.need.push_back({uniq[i], std::move(e)});
          r.need_at.push_back(slot(i));
          break;
        case Action::kExpired:
          r.need.push_back({uniq[i], std::nullopt});
          r.need_at.push_back(slot(i));
          break;
      }
    }
    if (hits != 0) state_.counters.hits.add(hits);
    if (stale_hits != 0) state_.counters.stale_hits.add(stale_hits);
    return r;
  }

  // load_needed: get_many's steps after the read: the background refresh of
  // the stale keys served, then the loads of r.need (their answers and
  // errors go to a).
  template <class BatchLoader>
  void load_needed(ReadMany& r, typename Loads<K, V>::Answers& a, BatchLoader& load) {
    if (!r.to_refresh.empty()) refresher_.start_batch(std::move(r.to_refresh), load, r.now);
    if (r.need.empty()) return;
    typename Loads<K, V>::Flights f = loads_.lead_or_join(std::move(r.need), r.now);
    loads_.reread(f.mine, a);
    typename Loads<K, V>::Leases leases = loads_.acquire_leases(f.mine, a);
    loads_.load_mine(load, f.mine, leases, a);
    loads_.await_deferred(load, leases, a);
    loads_.await_theirs(f.theirs, a);
  }

  // RepeatFilter: which keys of a batch repeat an earlier one. Open
  // addressing over the keys' indices (on the stack up to kInline / 2 keys):
  // one hash per key, no key copied, no node allocated. Hash and equality are
  // the result map's.
  class RepeatFilter {
   public:
    explicit RepeatFilter(std::span<const K> keys) : keys_(keys) {
      std::size_t cap = 16;
      while (cap < 2 * keys.size()) cap *= 2;
      mask_ = cap - 1;
      if (cap <= kInline) {
        slots_ = inline_;
      } else {
        heap_.resize(cap);
        slots_ = heap_.data();
      }
      std::fill_n(slots_, cap, kEmpty);
    }
    RepeatFilter(const RepeatFilter&) = delete;
    RepeatFilter& operator=(const RepeatFilter&) = delete;

    // first: the index of the earliest key equal to keys[i] among those
    // passed so far, i itself when there is none (each index is passed once,
    // in increasing order).
    std::size_t first(std::size_t i) {
      for (std::size_t p = typename Map::hasher{}(keys_[i]) & mask_;; p = (p + 1) & mask_) {
        if (slots_[p] == kEmpty) {
          slots_[p] = i;
          return i;
        }
        if (typename Map::key_equal{}(keys_[slots_[p]], keys_[i])) return slots_[p];
      }
    }

   private:
    static constexpr std::size_t kInline = 256;
    static constexpr std::size_t kEmpty = static_cast<std::size_t>(-1);
    std::span<const K> keys_;
    std::size_t mask_ = 0;
    std::size_t* slots_ = nullptr;
    std::size_t inline_[kInline];
    std::vector<std::size_t> heap_;
  };

  // judged_fresh_hit: whether got is a hit the store already judged fresh,
  // with no clock read here (Freshness::fresh_as_returned); counted as a hit.
  // Only for a store that judges expiry (state_.store_judges_expiry).
  bool judged_fresh_hit(const absl::StatusOr<std::optional<Entry<V>>>& got) {
    if (!got.ok() || !got->has_value() || !state_.fresh.fresh_as_returned(**got)) return false;
    state_.counters.hits.add();
    return true;
  }

  // answer: get_or_load's reply to what the store answered, judged at now.
  template <class Loader>
  absl::StatusOr<V> answer(const K& key, Loader& loader,
                           absl::StatusOr<std::optional<Entry<V>>>&& got, TimePoint now) {
    std::optional<Entry<V>> stale;
    if (ABSL_PREDICT_TRUE(got.ok())) {
      if (got->has_value()) {
        Entry<V>& e = **got;
        switch (state_.fresh.classify(e, now)) {
          case Action::kFresh:
            state_.counters.hits.add();
            return std::move(e.value);
          case Action::kRefreshAhead:
            state_.counters.hits.add();
            refresher_.start(key, loader, e, now);
            return std::move(e.value);
          case Action::kStaleServe:
            state_.counters.stale_hits.add();
            refresher_.start(key, loader, e, now);
            return std::move(e.value);
          case Action::kStaleLoad:
            stale = std::move(e);
            break;
          case Action::kExpired:
            break;
        }
      }
    } else {
      state_.counters.store_errors.add();  // degrade to the loader
    }
    return loads_.load_one(key, loader, std::move(stale), now);
  }

  // answer_if_present: get_if_present's reply, judged at now.
  std::optional<V> answer_if_present(absl::StatusOr<std::optional<Entry<V>>>&& got, TimePoint now) {
    if (!got.ok()) {
      state_.counters.store_errors.add();
    } else if (got->has_value()) {
      switch (state_.fresh.classify(**got, now)) {
        case Action::kFresh:
        case Action::kRefreshAhead:
          state_.counters.hits.add();
          return std::move((*got)->value);
        case Action::kStaleServe:
          state_.counters.stale_hits.add();
          return std::move((*got)->value);
        case Action::kStaleLoad:
        case Action::kExpired:
          break;
      }
    }
    state_.counters.misses.add();
    return std::nullopt;
  }

  // timed_get: Store::get, timed one call in LatencySampler::kSampleEvery.
  ABSL_ATTRIBUTE_ALWAYS_INLINE absl::StatusOr<std::optional<Entry<V>>> timed_get(const K& key) {
    if (ABSL_PREDICT_TRUE(!state_.latency.sample())) return state_.store->get(key);
    const auto t0 = CacheLatency::Steady::now();
    absl::StatusOr<std::optional<Entry<V>>> got = state_.store->get(key);
    state_.latency.store_get.record_since(t0);
    return got;
  }

  // current_value: without a loader, what compute() starts from: the pending
  // value, or the store's live entry (fresh or stale); a store error is an
  // error (compute must not overwrite a value it could not read).
  absl::StatusOr<std::optional<V>> current_value(const K& key) {
    if (writes_.write_back()) {
      if (std::optional<std::optional<V>> p = writes_.dirty_value(key)) return *std::move(p);
    }
    const TimePoint now = state_.fresh.read_now();
    if (ABSL_PREDICT_FALSE(recovery_.any()) && recovery_.suspect(key, now)) {
      return std::optional<V>();
    }
    absl::StatusOr<std::optional<Entry<V>>> got = state_.store->get(key);
    if (!got.ok()) {
      state_.counters.store_errors.add();
      return got.status();
    }
    if (!got->has_value() || (*got)->age(now) == Age::kExpired) return std::optional<V>();
    return std::optional<V>(std::move((*got)->value));
  }

  static absl::Status erased() {
    return absl::NotFoundError("erased (the delete is not yet written to the system of record)");
  }

  // validate: throws std::invalid_argument naming the field.
  static void validate(const std::shared_ptr<Store<K, V>>& store, const CacheOptions<K, V>& o) {
    auto bad = [](const std::string& what) { throw std::invalid_argument(what); };
    if (!store) bad("store must not be null");
    if (o.ttl.count() <= 0) bad("ttl must be > 0");
    if (o.stale_while_revalidate.count() < 0) bad("stale_while_revalidate must be >= 0");
    if (o.stale_if_error.count() < 0) bad("stale_if_error must be >= 0");
    if (!(o.ttl_jitter >= 0.0 && o.ttl_jitter < 1.0)) bad("ttl_jitter must be in [0, 1)");
    if (!(o.refresh_ahead >= 0.0 && o.refresh_ahead < 1.0)) {
      bad("refresh_ahead must be in [0, 1) (0: off)");
    }
    if (o.negative.ttl.count() < 0) bad("negative.ttl must be >= 0");
    if (o.load_timeout.count() < 0) bad("load_timeout must be >= 0");
    if (o.error_backoff.count() < 0) bad("error_backoff must be >= 0");
    if (o.max_pending_invalidations == 0) bad("max_pending_invalidations must be > 0");
    if (o.late_write_window.count() < 0) bad("late_write_window must be >= 0");
    // Spans are added to the clock's nanosecond time points, which overflow
    // about 290 years after 1970 (undefined behaviour): each is capped at 50
    // years, so every sum (ttl x (1 + jitter) + the stale span) stays inside.
    // (load_timeout is added with saturating_add: any value works.)
    constexpr std::chrono::milliseconds kMaxSpan = std::chrono::hours(24 * 365 * 50);
    const WriteBackOptions<K>& wb = o.write_back;
    for (const auto& [d, name] : {std::pair{o.ttl, "ttl"},
                                  {o.stale_while_revalidate, "stale_while_revalidate"},
                                  {o.stale_if_error, "stale_if_error"},
                                  {o.negative.ttl, "negative.ttl"},
                                  {o.error_backoff, "error_backoff"},
                                  {o.late_write_window, "late_write_window"},
                                  {wb.delay, "write_back.delay"},
                                  {wb.wait, "write_back.wait"},
                                  {wb.retry_base, "write_back.retry_base"},
                                  {wb.retry_max, "write_back.retry_max"},
                                  {wb.fsync_interval, "write_back.fsync_interval"},
                                  {wb.journal_segment_age, "write_back.journal_segment_age"}}) {
      if (d > kMaxSpan) {
        bad(std::string(name) +
            " must be at most 50 years (longer spans overflow the clock's time points)");
      }
    }
    if (o.negative.ttl.count() > 0 && o.negative.max_entries == 0) {
      bad("negative.ttl > 0 needs negative.max_entries > 0");
    }
    const WriteBackOptions<K>& w = o.write_back;
    switch (o.write_mode) {
      case WriteMode::kNone:
        break;
      case WriteMode::kWriteThrough:
        if (!o.writer.write) bad("write_mode = kWriteThrough needs writer.write");
        break;
      case WriteMode::kWriteBack:
        if (!o.writer.write) bad("write_mode = kWriteBack needs writer.write");
        if (w.delay.count() < 0) bad("write_back.delay must be >= 0");
        if (w.batch == 0) bad("write_back.batch must be > 0");
        if (w.max_dirty == 0) bad("write_back.max_dirty must be > 0");
        if (w.wait.count() < 0) bad("write_back.wait must be >= 0");
        if (w.retry_base.count() <= 0) bad("write_back.retry_base must be > 0");
        if (w.retry_max < w.retry_base)
          bad("write_back.retry_max must be >= write_back.retry_base");
        if (!w.journal.empty()) {
          if (!Writes<K, V>::kJournalable) {
            bad("write_back.journal is set but K or V has no larder::Codec (specialise "
                "larder::Codec, or leave write_back.journal empty)");
          }
          if (w.fsync == FsyncPolicy::kEveryInterval && w.fsync_interval.count() <= 0) {
            bad("write_back.fsync = kEveryInterval needs write_back.fsync_interval > 0");
          }
          if (w.journal_segment_bytes == 0) bad("write_back.journal_segment_bytes must be > 0");
          if (w.journal_segment_age.count() < 0) {
            bad("write_back.journal_segment_age must be >= 0");
          }
        }
        break;
    }
    if (o.write_mode != WriteMode::kWriteBack && !w.journal.empty()) {
      bad("write_back.journal is set but write_mode is not kWriteBack");
    }
  }

  CacheState<K, V> state_;
  Recovery<K, V> recovery_;
  Loads<K, V> loads_;
  Refresher<K, V> refresher_;
  Writes<K, V> writes_;  // last: a write-back's flusher starts at once
};

// The core of the common <K, V> (std::string or std::int64_t keys,
// std::string values) is compiled once in larder::core
// (src/core/instances_cache.cc, with Cache<K, V> itself): the parts below,
// and the slow paths a read reaches through the inline hit path for the
// loader bound at construction (Loads::load_one and Refresher::start with
// CacheOptions::loader's std::function; the per-call loaders are the caller's
// types and are instantiated where they are used). The hit path
// (CacheCore::get_or_load up to a fresh hit, get_if_present) stays inline.
// Define LARDER_NO_EXTERN_TEMPLATES to instantiate all of it in your own
// files too.
// NOLINTBEGIN(bugprone-macro-parentheses): EXTERN, K and V are a keyword and types
#define LARDER_INTERNAL_CACHE_CORE_INSTANCES(EXTERN, K, V)                                        \
  EXTERN template class CacheCore<K, V>;                                                          \
  EXTERN template class Recovery<K, V>;                                                           \
  EXTERN template class Loads<K, V>;                                                              \
  EXTERN template class Refresher<K, V>;                                                          \
  EXTERN template class Writes<K, V>;                                                             \
  EXTERN template absl::StatusOr<V> Loads<K, V>::load_one(                                        \
      const K&, const std::function<absl::StatusOr<V>(const K&)>&, std::optional<Entry<V>>,       \
      TimePoint);                                                                                 \
  EXTERN template absl::StatusOr<V> Loads<K, V>::load_one(                                        \
      const K&, std::function<absl::StatusOr<V>(const K&)>&, std::optional<Entry<V>>, TimePoint); \
  EXTERN template void Refresher<K, V>::start(                                                    \
      const K&, const std::function<absl::StatusOr<V>(const K&)>&, const Entry<V>&, TimePoint);   \
  EXTERN template void Refresher<K, V>::start(                                                    \
      const K&, std::function<absl::StatusOr<V>(const K&)>&, const Entry<V>&, TimePoint)
// NOLINTEND(bugprone-macro-parentheses)

#ifndef LARDER_NO_EXTERN_TEMPLATES
LARDER_INTERNAL_CACHE_CORE_INSTANCES(extern, std::string, std::string);
LARDER_INTERNAL_CACHE_CORE_INSTANCES(extern, std::int64_t, std::string);
#endif  // LARDER_NO_EXTERN_TEMPLATES

}  // namespace larder::internal

#endif  // LARDER_INTERNAL_CACHE_CORE_H_
