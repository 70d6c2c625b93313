// SPDX-License-Identifier: Apache-2.0
//
// SingleFlight<K, V>: coalesces concurrent calls for one key into one call.
//
// When many threads ask for the same missing key at once, the first becomes
// the *leader* of a Flight and does the work; the others *join* the flight and
// block (on a condition variable, never spinning) until the leader completes
// it, then all read the same result, value or error. Distinct keys never wait
// on each other: the table of flights is sharded and a shard's mutex is held
// only to find or insert a flight, never while work runs.
//
// How it differs from the obvious `std::shared_future` per key (or Go's
// singleflight.Group, which it otherwise resembles):
//   * Waiters may give up after a deadline (Flight::wait_for) while the work
//     goes on; Cache uses this for load_timeout.
//   * A flight can be *superseded*: a later write to the key (invalidate, put,
//     erase) marks it and takes it out of the table, and the flight then still
//     hands its result to the waiters it has but does not publish it into the
//     cache; callers after the write start a new flight. publish_if_current()
//     and supersede() take the flight's own publish mutex, so a publish in
//     progress finishes before supersede() returns and a publish after it does
//     not happen: this is what stops an invalidated load from resurrecting an
//     older value (see cache.h, "invalidation").
//   * The leader API is split (join / finish) so a caller can lead many
//     flights at once and complete them from one batch call (Cache::get_many).
//
// A leader must eventually call finish() for every flight it leads, or its
// waiters block forever; run() does this for the simple case.
//
// Thread-safety: every method may be called concurrently.
//
// Example:
//
//   larder::SingleFlight<std::string, int> group;
//   absl::StatusOr<int> v = group.run("k", [] { return expensive(); });
#ifndef LARDER_SINGLE_FLIGHT_H_
#define LARDER_SINGLE_FLIGHT_H_

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "larder/internal/mutex.h"
#include "larder/internal/striped_counter.h"

namespace larder {

template <class K, class V, class Hash, class Eq>
class SingleFlight;

namespace internal {

// detach_status: a copy of s that shares no storage with it (code and
// message; payloads are not carried). A waiter copies a flight's error with
// it, never with Status's copy constructor: absl::Status shares its message
// through an atomic reference count whose decrement lives in libabsl_status,
// and Debian's build of that library is not instrumented for ThreadSanitizer,
// so a plain copy crossing threads is reported as a race on every error.
inline absl::Status detach_status(const absl::Status& s) {
  return s.ok() ? absl::OkStatus() : absl::Status(s.code(), s.message());
}

// detach_result: a copy of a flight's result for a waiter (see detach_status).
template <class V>
absl::StatusOr<V> detach_result(const absl::StatusOr<V>& r) {
  if (r.ok()) return *r;
  return detach_status(r.status());
}

}  // namespace internal

// Flight<V>: the shared state of one call in flight. Held by shared_ptr by the
// leader, every waiter and (until finished) the SingleFlight table.
template <class V>
class Flight {
 public:
  Flight() = default;
  Flight(const Flight&) = delete;
  Flight& operator=(const Flight&) = delete;

  // wait: blocks until the flight is complete and returns its result. The
  // reference stays valid while the caller holds the Flight.
  const absl::StatusOr<V>& wait() {
    internal::MutexLock l(&mu_);
    cv_.wait(l, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return done_; });
    return result_;
  }

  // wait_for: like wait(), but gives up after d (real time) and returns
  // nullptr; the flight goes on.
  const absl::StatusOr<V>* wait_for(std::chrono::nanoseconds d) {
    internal::MutexLock l(&mu_);
    if (!cv_.wait_for(l, d, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return done_; })) {
      return nullptr;
    }
    return &result_;
  }

  // done: whether the result is available.
  bool done() const {
    internal::MutexLock l(&mu_);
    return done_;
  }

  // supersede: a later write to the key happened; the flight's result must not
  // be published. Returns after any publish in progress has finished.
  void supersede() {
    internal::MutexLock l(&publish_mu_);
    superseded_ = true;
  }

  // publish_if_current: runs fn() under the flight's publish mutex unless the
  // flight was superseded; returns whether fn ran. fn must not call
  // supersede() on this flight.
  template <class Fn>
  bool publish_if_current(Fn&& fn) {
    internal::MutexLock l(&publish_mu_);
    if (superseded_) return false;
    fn();
    return true;
  }

  bool superseded() const {
    internal::MutexLock l(&publish_mu_);
    return superseded_;
  }

 private:
  template <class K, class V2, class Hash, class Eq>
  friend class SingleFlight;

  void complete(absl::StatusOr<V> result) {
    {
      internal::MutexLock l(&mu_);
      result_ = std::move(result);
      done_ = true;
    }
    cv_.notify_all();
  }

  mutable internal::Mutex mu_;
  internal::CondVar cv_;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  absl::StatusOr<V> result_ ABSL_GUARDED_BY(mu_){absl::UnknownError("flight not complete")};

  mutable internal::Mutex publish_mu_;
  bool superseded_ ABSL_GUARDED_BY(publish_mu_) = false;
};

template <class K, class V, class Hash = absl::Hash<K>, class Eq = std::equal_to<K>>
class SingleFlight {
 public:
  using FlightPtr = std::shared_ptr<Flight<V>>;

  struct Joined {
    FlightPtr flight;
    bool leader = false;  // true: the caller must finish() it
  };

  SingleFlight() = default;
  SingleFlight(const SingleFlight&) = delete;
  SingleFlight& operator=(const SingleFlight&) = delete;

  // join: the flight for key, started by this call (leader = true) when none
  // was in flight. O(1); takes one shard mutex briefly.
  Joined join(const K& key) {
    Shard& s = shard_for(key);
    internal::MutexLock l(&s.mu);
    auto [it, inserted] = s.flights.try_emplace(key);
    if (inserted) it->second = std::make_shared<Flight<V>>();
    return Joined{it->second, inserted};
  }

  // find: the flight in progress for key, or null.
  FlightPtr find(const K& key) const {
    const Shard& s = shard_for(key);
    internal::MutexLock l(&s.mu);
    auto it = s.flights.find(key);
    return it == s.flights.end() ? nullptr : it->second;
  }

  // finish: removes the leader's flight from the table and completes it with
  // result, waking every waiter. Call once per led flight. An error is stored
  // detached (see internal::detach_status), so the flight shares nothing with the
  // leader's copy.
  void finish(const K& key, const FlightPtr& flight, absl::StatusOr<V> result) {
    if (!result.ok()) result = internal::detach_status(result.status());
    {
      Shard& s = shard_for(key);
      internal::MutexLock l(&s.mu);
      auto it = s.flights.find(key);
      if (it != s.flights.end() && it->second == flight) s.flights.erase(it);
    }
    flight->complete(std::move(result));
  }

  // supersede: marks key's flight in progress (if any) superseded and takes
  // it out of the table: a caller that comes later leads a new flight
  // instead of joining one whose result predates the write (its leader still
  // finishes it for the waiters it has).
  void supersede(const K& key) {
    FlightPtr f;
    {
      Shard& s = shard_for(key);
      internal::MutexLock l(&s.mu);
      auto it = s.flights.find(key);
      if (it == s.flights.end()) return;
      f = std::move(it->second);
      s.flights.erase(it);
    }
    f->supersede();
  }

  // supersede_all: supersede() for every flight in progress. O(flights).
  void supersede_all() {
    std::vector<FlightPtr> all;
    for (Shard& s : shards_) {
      internal::MutexLock l(&s.mu);
      for (auto& [k, f] : s.flights) all.push_back(std::move(f));
      s.flights.clear();
    }
    for (FlightPtr& f : all) f->supersede();
  }

  // size: flights in progress now.
  std::size_t size() const {
    std::size_t n = 0;
    for (const Shard& s : shards_) {
      internal::MutexLock l(&s.mu);
      n += s.flights.size();
    }
    return n;
  }

  // run: calls fn() (returning V or absl::StatusOr<V>) once for all concurrent
  // callers of key and returns its result to each; *joined (when given) tells
  // whether this caller joined someone else's call. fn runs on the leader's
  // thread, under no lock. An exception from fn reaches the waiters as
  // kInternal and is rethrown to the leader.
  template <class Fn>
  absl::StatusOr<V> run(const K& key, Fn&& fn, bool* joined = nullptr) {
    Joined j = join(key);
    if (joined != nullptr) *joined = !j.leader;
    if (!j.leader) return internal::detach_result(j.flight->wait());
    absl::StatusOr<V> result{absl::UnknownError("")};
    try {
      result = std::forward<Fn>(fn)();
    } catch (...) {
      finish(key, j.flight, absl::InternalError("single-flight call threw"));
      throw;
    }
    finish(key, j.flight, result);
    return result;
  }

 private:
  static constexpr std::size_t kShards = 32;

  struct alignas(internal::kCacheLine) Shard {
    mutable internal::Mutex mu;
    absl::flat_hash_map<K, FlightPtr, Hash, Eq> flights ABSL_GUARDED_BY(mu);
  };

  // The shard comes from the hash's high bits: the map inside uses the low
  // bits, and reusing them would leave each shard's map poorly spread.
  static std::size_t shard_index(const K& key) {
    const std::uint64_t h = static_cast<std::uint64_t>(Hash{}(key));
    return static_cast<std::size_t>((h ^ (h >> 33)) >> 40) % kShards;
  }
  Shard& shard_for(const K& key) { return shards_[shard_index(key)]; }
  const Shard& shard_for(const K& key) const { return shards_[shard_index(key)]; }

  std::array<Shard, kShards> shards_;
};

}  // namespace larder

#endif  // LARDER_SINGLE_FLIGHT_H_
