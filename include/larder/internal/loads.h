// SPDX-License-Identifier: Apache-2.0
//
// Loads<K, V>: how a cache loads what its store did not answer: single-flight
// per key, the stale fallback, load_timeout, negative caching, the
// cross-process guard, and the steps get_many is made of.
//
// Single-flight: every load and refresh of a key is a Flight in a sharded
// SingleFlight table (single_flight.h). The leader re-reads the store once
// after winning the flight (another leader may have published between this
// caller's store read and its join), so a herd costs exactly one loader call.
//
// Publishing: a flight stores its result only under its publish mutex and
// only if no write superseded it (publish, publish_absent), so an invalidate
// that races a load wins: the load's value still reaches the callers waiting
// for it, but is not stored after the invalidate. A superseded flight also
// leaves the table, so callers after the write lead a new one. With
// write-back, a load that read the system of record before a pending write
// reached it must not be stored either: publish skips a key that is dirty,
// and the flusher supersedes the flights of the keys it wrote before they
// turn clean (WriteBackOptions::before_clean), so a flight that read the old
// row publishes neither while the key is dirty nor after. A loaded value is a fill
// (Store::fill: other instances are not told); a refresh that found a
// different value is a change (Store::put), whose failure defers the drop of
// the old copy (recovery.h).
//
// get_many, step by step (each a method returning a plain struct; CacheCore
// runs them in this order):
//
//   lead_or_join    keys to load -> mine (this call leads their flights) and
//                   theirs (another call is loading them); negative hits
//                   dropped
//   reread          mine answered by a store value published meanwhile
//   acquire_leases  with a load_guard: mine -> won (lease held or guard down)
//                   + deferred (another process is loading them)
//   load_mine       ONE batch-loader call for what is left of mine; with
//                   load_timeout and a stale value to fall back on, on the
//                   executor (callers stop waiting at the shared deadline)
//   await_deferred  values the other processes stored, else a second batch
//   await_theirs    the other calls' results
//
// load_timeout is measured on the Cache's Clock (wait_until below), like
// every other age in the cache.
//
// Mine are loaded before waiting on anyone else, so two get_many calls that
// lead each other's keys never deadlock.
//
// Thread-safety: every method may be called concurrently. No lock is held
// while a loader runs.
#ifndef LARDER_INTERNAL_LOADS_H_
#define LARDER_INTERNAL_LOADS_H_

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/base/optimization.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "larder/internal/cache_state.h"
#include "larder/internal/invoke.h"
#include "larder/internal/recovery.h"
#include "larder/load_guard.h"

namespace larder::internal {

template <class K, class V>
class Loads {
 public:
  using Map = absl::flat_hash_map<K, V>;
  using FlightPtr = std::shared_ptr<Flight<V>>;

  // A key to load, with the stale entry to fall back on (if any).
  struct Need {
    K key;
    std::optional<Entry<V>> stale;
  };
  // A key whose flight this call leads (mine) or waits for (theirs).
  struct Led {
    K key;
    std::optional<Entry<V>> stale;
    FlightPtr flight;
  };
  struct Flights {
    std::vector<Led> mine, theirs;
  };
  // With a load_guard: the leases this process won, and the keys another
  // process is loading (waited for after our own batch).
  struct Leases {
    std::vector<std::unique_ptr<LoadLease>> held;
    std::vector<Led> deferred;
  };
  // get_many's result so far: the values, and the load error of each key
  // without a stale fallback (the first one kept apart).
  struct Answers {
    Map out;
    absl::flat_hash_map<K, absl::Status> errors;
    std::optional<absl::Status> first_error;
    void add_error(const K& key, const absl::Status& st) {
      errors.insert_or_assign(key, st);
      if (!first_error) first_error = st;
    }
  };

  Loads(CacheState<K, V>& s, Recovery<K, V>& recovery) : s_(s), recovery_(recovery) {}

  // ---- one key ----

  // load_one: the load of key after a store miss (stale: the entry past its
  // serving age, if any): negative cache, then lead or join key's flight.
  template <class Loader>
  absl::StatusOr<V> load_one(const K& key, Loader& loader, std::optional<Entry<V>> stale,
                             TimePoint now);

  // await: a waiter's answer from flight (stale fallback and load_timeout).
  // With a stale value and load_timeout, it stops waiting at `deadline` (an
  // instant of the Cache's Clock) when given (several keys sharing one
  // timeout), else load_timeout after now.
  absl::StatusOr<V> await(const FlightPtr& flight, std::optional<Entry<V>>& stale,
                          std::optional<TimePoint> deadline = {}) {
    const absl::StatusOr<V>* r = nullptr;
    if (stale && s_.load_timeout.count() > 0) {
      r = wait_until(*flight, deadline ? *deadline : timeout_deadline());
      if (r == nullptr) {
        s_.counters.load_timeouts.add();
        s_.counters.stale_hits.add();
        return std::move(stale->value);
      }
    } else {
      r = &flight->wait();
    }
    if (r->ok()) return **r;
    if (r->status().code() != absl::StatusCode::kNotFound &&
        s_.fresh.can_fall_back(stale, s_.fresh.now())) {
      s_.counters.stale_hits.add();
      return std::move(stale->value);
    }
    return detach_status(r->status());
  }

  // ---- publishing (also used by Refresher) ----

  // deliver: a loaded value of key: stored (a fill; a put when `changed`)
  // unless superseded, then flight finished with it.
  void deliver(const FlightPtr& flight, const K& key, V value, TimePoint now,
               bool changed = false) {
    publish(flight, key, s_.fresh.make_entry(value, now), changed);
    s_.flights.finish(key, flight, std::move(value));
  }

  // deliver_absent: the loader said NotFound for key.
  void deliver_absent(const FlightPtr& flight, const K& key, TimePoint now) {
    publish_absent(flight, key, now);
    s_.flights.finish(key, flight, CacheState<K, V>::not_found(key));
  }

  // cancel: a flight whose task started after the cache was closed.
  void cancel(const K& key, const FlightPtr& flight) {
    s_.flights.finish(key, flight, absl::CancelledError("the cache was destroyed"));
  }

  // publish: stores entry for key unless flight was superseded (see above).
  void publish(const FlightPtr& flight, const K& key, Entry<V> entry, bool changed = false) {
    flight->publish_if_current([&] {
      if (dirty_now(key)) return;  // read before a write not yet written
      const auto mark = recovery_.mark();
      const auto t0 =
          s_.latency.sample() ? CacheLatency::Steady::now() : CacheLatency::Steady::time_point{};
      absl::Status st =
          changed ? s_.store->put(key, std::move(entry)) : s_.store->fill(key, std::move(entry));
      CacheLatency::record(s_.latency.store_put, t0);
      if (!st.ok()) {
        s_.counters.store_errors.add();
        // A fill that timed out may still land, after a later put: deferred
        // too, while there is room (recovery.h).
        if (changed) {
          recovery_.defer(key);
        } else if (st.code() == absl::StatusCode::kDeadlineExceeded) {
          recovery_.defer_if_room(key);
        }
      } else if (changed) {
        recovery_.settle(key, mark);
      }
      if (s_.negative) s_.negative->erase(key);
    });
    s_.unpause_refresh(key);
  }

  // publish_absent: drop any stale entry and, with negative caching,
  // remember the absence.
  void publish_absent(const FlightPtr& flight, const K& key, TimePoint now) {
    flight->publish_if_current([&] {
      if (dirty_now(key)) return;  // read before a write not yet written
      if (!s_.store->erase(key).ok()) s_.counters.store_errors.add();
      if (s_.negative) s_.negative->add(key, now + s_.negative_ttl, now);
    });
  }

  // dirty_now: with write-back, whether key has a write not yet written.
  bool dirty_now(const K& key) const { return s_.dirty_now && s_.dirty_now(key); }

  // fresh_in_store: the value of key's fresh entry in the store, if any.
  std::optional<V> fresh_in_store(const K& key) {
    if (recovery_.is_suspect(key)) return std::nullopt;
    absl::StatusOr<std::optional<Entry<V>>> got = s_.store->get(key);
    if (!got.ok()) {
      s_.counters.store_errors.add();
      return std::nullopt;
    }
    if (got->has_value() && s_.fresh.now() < (*got)->fresh_until) {
      return std::move((*got)->value);
    }
    return std::nullopt;
  }

  // ---- get_many's steps (see the file comment) ----

  Flights lead_or_join(std::vector<Need> need, TimePoint now) {
    Flights f;
    for (Need& n : need) {
      if (s_.negative && s_.negative->contains(n.key, now)) {
        s_.counters.negative_hits.add();
        continue;
      }
      s_.counters.misses.add();
      typename SingleFlight<K, V>::Joined j = s_.flights.join(n.key);
      if (!j.leader) s_.counters.coalesced.add();
      (j.leader ? f.mine : f.theirs)
          .push_back(Led{std::move(n.key), std::move(n.stale), std::move(j.flight)});
    }
    return f;
  }

  // reread: another leader may have published between our store read and
  // our join: those of mine are answered and leave it.
  void reread(std::vector<Led>& mine, Answers& a) {
    if (mine.empty()) return;
    std::vector<K> keys = keys_of(mine);
    auto again = s_.store->get_many(std::span<const K>(keys));
    if (!again.ok() || again->size() != keys.size()) return;
    const TimePoint t = s_.fresh.now();
    recovery_.forget_suspects(keys, *again, t);
    std::vector<Led> still;
    for (std::size_t i = 0; i < mine.size(); ++i) {
      std::optional<Entry<V>>& e = (*again)[i];
      if (e && t < e->fresh_until) {
        s_.flights.finish(mine[i].key, mine[i].flight, e->value);
        a.out.insert_or_assign(std::move(mine[i].key), std::move(e->value));
      } else {
        still.push_back(std::move(mine[i]));
      }
    }
    mine = std::move(still);
  }

  // acquire_leases: cross-process single-flight. Keys another process is
  // loading move to `deferred` (waited for after our own batch, never while
  // holding our leases); a key whose previous holder stored it is answered.
  Leases acquire_leases(std::vector<Led>& mine, Answers& a) {
    Leases l;
    if (!s_.opt.load_guard || mine.empty()) return l;
    std::vector<Led> won;
    for (Led& led : mine) {
      absl::StatusOr<std::unique_ptr<LoadLease>> acquired = s_.opt.load_guard->try_acquire(led.key);
      if (acquired.ok() && *acquired == nullptr) {
        l.deferred.push_back(std::move(led));
        continue;
      }
      if (acquired.ok()) {
        // The previous holder may have stored the value just before releasing.
        if (std::optional<V> v = fresh_in_store(led.key)) {
          s_.flights.finish(led.key, led.flight, *v);
          a.out.insert_or_assign(std::move(led.key), *std::move(v));
          continue;
        }
        l.held.push_back(*std::move(acquired));
      }  // else the guard is down: load without it
      won.push_back(std::move(led));
    }
    mine = std::move(won);
    return l;
  }

  // timeout_deadline: load_timeout from now, on the Cache's Clock.
  TimePoint timeout_deadline() const { return saturating_add(s_.fresh.now(), s_.load_timeout); }

  // wait_until: flight's result, or nullptr once the Cache's Clock reaches
  // deadline. The flight's condition variable waits in real time, so the
  // Clock is re-read after each slice: the first slice is kClockPoll; a Clock
  // that kept up with real time over it (system_clock) then gets the whole
  // remainder as one wait (two wake-ups in all; a wait is capped at an hour),
  // while one that did not (a ManualClock, moved by a test) is polled every
  // kClockPoll, so a test that advances it past the deadline releases the
  // waiter within about a millisecond and nothing waits on real time.
  static constexpr std::chrono::nanoseconds kClockPoll = std::chrono::milliseconds(1);
  const absl::StatusOr<V>* wait_until(Flight<V>& flight, TimePoint deadline) const {
    using std::chrono::nanoseconds;
    using Real = std::chrono::steady_clock;
    TimePoint now = s_.fresh.now();
    Real::time_point real = Real::now();
    nanoseconds slice = kClockPoll;
    for (;;) {
      if (now >= deadline) return flight.wait_for(nanoseconds::zero());  // done by now?
      const nanoseconds left = std::chrono::duration_cast<nanoseconds>(deadline - now);
      if (const absl::StatusOr<V>* r = flight.wait_for(std::min(left, slice))) return r;
      const TimePoint later = s_.fresh.now();
      const Real::time_point real_later = Real::now();
      const bool keeps_up = 2 * (later - now) >= real_later - real;
      slice = keeps_up ? nanoseconds(std::chrono::hours(1)) : kClockPoll;  // re-read hourly
      now = later;
      real = real_later;
    }
  }

  // load_mine: ONE batch-loader call for mine; the leases are released
  // after publishing (a waiting process then finds the values). With
  // load_timeout and some key having a stale value to fall back on, the
  // batch runs on the executor and this caller stops waiting for those keys
  // at load_timeout (as get_or_load does); a full executor loads here.
  template <class BatchLoader>
  void load_mine(BatchLoader& load, std::vector<Led>& mine, Leases& leases, Answers& a) {
    if (!(s_.load_timeout.count() > 0 && !mine.empty() &&
          std::any_of(mine.begin(), mine.end(),
                      [](const Led& l) { return l.stale.has_value(); }))) {
      load_batch(load, mine, &a);
      leases.held.clear();
      return;
    }
    struct Job {
      std::vector<Led> mine;
      std::vector<std::unique_ptr<LoadLease>> leases;
    };
    // The job owns the leases: released by the task, after publishing.
    auto job = std::make_shared<Job>(Job{mine, std::move(leases.held)});
    leases.held.clear();
    auto fn = std::make_shared<std::decay_t<BatchLoader>>(load);
    const bool queued = s_.tasks.submit(
        [this, fn, job] {
          load_batch(*fn, job->mine, nullptr);
          job->leases.clear();  // after publishing
        },
        [this, job] {
          for (const Led& l : job->mine) cancel(l.key, l.flight);
        });
    if (!queued) {
      // The executor is full: load here, without the timeout.
      load_batch(load, mine, &a);
      job->leases.clear();
      return;
    }
    const TimePoint deadline = timeout_deadline();
    for (Led& l : mine) {
      absl::StatusOr<V> r = await(l.flight, l.stale, deadline);
      if (r.ok()) {
        a.out.insert_or_assign(l.key, *std::move(r));
      } else if (r.status().code() != absl::StatusCode::kNotFound) {
        a.add_error(l.key, r.status());
      }
    }
  }

  // await_deferred: keys another process was loading: its stored values
  // (one shared LoadGuard::wait() deadline), the rest in a second batch.
  template <class BatchLoader>
  void await_deferred(BatchLoader& load, Leases& leases, Answers& a) {
    if (leases.deferred.empty()) return;
    const TimePoint deadline = saturating_add(s_.fresh.now(), s_.opt.load_guard->wait());
    std::vector<Led> late;
    for (Led& l : leases.deferred) {
      std::unique_ptr<LoadLease> lease;
      if (std::optional<V> v = guard_wait(l.key, &lease, deadline)) {
        s_.flights.finish(l.key, l.flight, *v);
        a.out.insert_or_assign(std::move(l.key), *std::move(v));
        continue;
      }
      if (lease) leases.held.push_back(std::move(lease));
      late.push_back(std::move(l));
    }
    load_batch(load, late, &a);
    leases.held.clear();
  }

  void await_theirs(std::vector<Led>& theirs, Answers& a) {
    for (Led& l : theirs) {
      const absl::StatusOr<V>& r = l.flight->wait();
      if (r.ok()) {
        a.out.insert_or_assign(l.key, *r);
      } else {
        fail(a, l, detach_status(r.status()));
      }
    }
  }

  // run_load: the leader's load of key: guard, loader, publish, finish.
  // Returns this caller's answer (the stale value when falling back).
  template <class Loader>
  absl::StatusOr<V> run_load(const K& key, Loader& loader, std::optional<Entry<V>> stale,
                             const FlightPtr& flight) {
    std::unique_ptr<LoadLease> lease;
    if (s_.opt.load_guard) {
      if (std::optional<V> v = guard_wait(key, &lease)) {
        s_.flights.finish(key, flight, *v);
        return *std::move(v);
      }
    }
    const auto t0 = s_.latency.start();
    absl::StatusOr<V> r = invoke_loader<V>(loader, key);
    CacheLatency::record(s_.latency.load, t0);
    const TimePoint now = s_.fresh.now();
    if (r.ok()) {
      s_.counters.loads.add();
      deliver(flight, key, *r, now);
      return r;
    }
    s_.counters.load_failures.add();
    const absl::Status st = r.status();
    after_failure(flight, key, stale, st, now);
    s_.flights.finish(key, flight, st);
    if (st.code() != absl::StatusCode::kNotFound && s_.fresh.can_fall_back(stale, now)) {
      s_.counters.stale_hits.add();
      return std::move(stale->value);
    }
    return st;
  }

 private:
  static std::vector<K> keys_of(const std::vector<Led>& led) {
    std::vector<K> keys;
    keys.reserve(led.size());
    for (const Led& l : led) keys.push_back(l.key);
    return keys;
  }

  // fail: key l failed with st: its stale value when it may fall back, else
  // the batch's first error (NotFound is not an error: the key is absent).
  void fail(Answers& a, const Led& l, const absl::Status& st) {
    if (st.code() == absl::StatusCode::kNotFound) return;
    if (s_.fresh.can_fall_back(l.stale, s_.fresh.now())) {
      s_.counters.stale_hits.add();
      a.out.insert_or_assign(l.key, l.stale->value);
    } else {
      a.add_error(l.key, st);
    }
  }

  // after_failure: bookkeeping for a failed (non-refresh) load of key.
  void after_failure(const FlightPtr& flight, const K& key, const std::optional<Entry<V>>& stale,
                     const absl::Status& st, TimePoint now) {
    if (st.code() == absl::StatusCode::kNotFound) {
      publish_absent(flight, key, now);
    } else if (std::optional<Entry<V>> kept = s_.fresh.fail_safe(stale, now)) {
      // Fail-safe: keep serving the stale value for a while without asking.
      publish(flight, key, *std::move(kept));
    }
  }

  // load_batch: one batch-loader call for the led keys, then publish, finish
  // each flight and answer into *a (null: a background batch, no answers).
  template <class BatchLoader>
  void load_batch(BatchLoader& load, std::vector<Led>& mine, Answers* a) {
    if (mine.empty()) return;
    const std::vector<K> keys = keys_of(mine);
    const auto t0 = s_.latency.start();
    absl::StatusOr<Map> loaded = invoke_batch_loader<K, V>(load, std::span<const K>(keys));
    CacheLatency::record(s_.latency.batch_load, t0);
    const TimePoint t = s_.fresh.now();
    if (loaded.ok()) {
      s_.counters.loads.add();
      for (Led& l : mine) {
        auto it = loaded->find(l.key);
        if (it != loaded->end()) {
          deliver(l.flight, l.key, it->second, t);
          if (a != nullptr) a->out.insert_or_assign(l.key, std::move(it->second));
        } else {
          deliver_absent(l.flight, l.key, t);
        }
      }
    } else {
      s_.counters.load_failures.add();
      const absl::Status& st = loaded.status();
      for (Led& l : mine) {
        after_failure(l.flight, l.key, l.stale, st, t);
        s_.flights.finish(l.key, l.flight, st);
        if (a != nullptr) fail(*a, l, st);
      }
    }
  }

  // guard_wait: the cross-process side of a load (load_guard.h). Returns a
  // value another process stored while we waited; otherwise nullopt, with
  // *lease set when this process won the guard (unset: the guard is down, or
  // we waited wait() and load anyway).
  std::optional<V> guard_wait(const K& key, std::unique_ptr<LoadLease>* lease) {
    return guard_wait(key, lease, saturating_add(s_.fresh.now(), s_.opt.load_guard->wait()));
  }
  std::optional<V> guard_wait(const K& key, std::unique_ptr<LoadLease>* lease, TimePoint deadline) {
    LoadGuard<K>& guard = *s_.opt.load_guard;
    for (;;) {
      absl::StatusOr<std::unique_ptr<LoadLease>> acquired = guard.try_acquire(key);
      if (!acquired.ok()) return std::nullopt;  // guard down: load without it
      if (*acquired) {
        *lease = *std::move(acquired);
        // The previous holder may have stored the value just before releasing.
        return fresh_in_store(key);
      }
      // Another process is loading key: watch the store for its value.
      for (;;) {
        if (std::optional<V> v = fresh_in_store(key)) return v;
        if (s_.fresh.now() >= deadline) return std::nullopt;
        absl::StatusOr<bool> held = guard.is_held(key);
        if (!held.ok() || !*held) {
          if (std::optional<V> v = fresh_in_store(key)) return v;
          break;  // released without a value: try to win it
        }
        const std::chrono::milliseconds poll = guard.poll_interval();
        if (poll.count() > 0) std::this_thread::sleep_for(poll);
      }
    }
  }

  CacheState<K, V>& s_;
  Recovery<K, V>& recovery_;
};

// Loads::load_one: out of line and not inline, so that the instantiation for
// the bound loader of the common <K, V> is compiled once in larder::core
// (cache_core.h declares it `extern template`).
template <class K, class V>
template <class Loader>
absl::StatusOr<V> Loads<K, V>::load_one(const K& key, Loader& loader, std::optional<Entry<V>> stale,
                                        TimePoint now) {
  if (s_.negative && !stale && s_.negative->contains(key, now)) {
    s_.counters.negative_hits.add();
    return CacheState<K, V>::not_found(key);
  }
  s_.counters.misses.add();
  typename SingleFlight<K, V>::Joined j = s_.flights.join(key);
  if (!j.leader) {
    s_.counters.coalesced.add();
    return await(j.flight, stale);
  }
  if (std::optional<V> v = fresh_in_store(key)) {
    s_.flights.finish(key, j.flight, *v);
    return *std::move(v);
  }
  if (stale && s_.load_timeout.count() > 0) {
    // Load on the executor so this caller can stop waiting at load_timeout.
    auto fn = std::make_shared<std::decay_t<Loader>>(loader);
    const bool queued = s_.tasks.submit(
        [this, key, fn, stale, flight = j.flight] { (void)run_load(key, *fn, stale, flight); },
        [this, key, flight = j.flight] { cancel(key, flight); });
    if (queued) return await(j.flight, stale);
    // The executor is full: load here, without the timeout.
  }
  return run_load(key, loader, std::move(stale), j.flight);
}

}  // namespace larder::internal

#endif  // LARDER_INTERNAL_LOADS_H_
