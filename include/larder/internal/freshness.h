// SPDX-License-Identifier: Apache-2.0
//
// Freshness<V>: what a cache read does with an entry of a given age, and the
// entries a load makes. Pure logic over the Clock and CacheOptions' time
// fields; no store, no locks.
//
// Ages (fresh_until = written + ttl*(1 +- jitter),
// stale_until = fresh_until + max(swr, sie)):
//
//   written --[refresh-ahead point]-- fresh_until --(+swr)-- ... -- stale_until
//   | kFresh          | kRefreshAhead | kStaleServe         | kStaleLoad     | kExpired
//   | hit             | hit + refresh | stale hit + refresh | load; on error:|
//                                                           | serve stale    | miss
//
//   The refresh-ahead point is fresh_until - (1 - refresh_ahead) * ttl.
//   "load; on error serve stale" exists only when stale_if_error > swr
//   (can_fall_back). After a failed load answered with the stale value, the
//   entry is kept fresh for error_backoff (fail_safe), never past its
//   stale_until, so a failing source gets one call per key per back-off.
//
// read_now() is the instant reads classify by (internal::read_now in
// clock.h): with the system clock it is CLOCK_REALTIME_COARSE, whose
// resolution is the kernel tick (1 to 4 ms): an entry may be treated as
// fresh up to one tick past fresh_until. Any other Clock (ManualClock in
// tests) is read exactly. now() is the exact clock, used for everything that
// is written.
//
// Thread-safety: const after construction; make_entry draws jitter from a
// per-thread generator.
#ifndef LARDER_INTERNAL_FRESHNESS_H_
#define LARDER_INTERNAL_FRESHNESS_H_

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <utility>

#include "larder/clock.h"
#include "larder/store.h"

namespace larder::internal {

// FreshnessOptions: the time fields of CacheOptions (validated by the cache).
struct FreshnessOptions {
  std::chrono::milliseconds ttl{std::chrono::minutes(1)};
  std::chrono::milliseconds stale_while_revalidate{0};
  std::chrono::milliseconds stale_if_error{0};
  double ttl_jitter = 0.0;
  double refresh_ahead = 0.0;
  std::chrono::milliseconds error_backoff{0};
};

// Action: what a read does with an entry (see the diagram above).
enum class Action { kFresh, kRefreshAhead, kStaleServe, kStaleLoad, kExpired };

template <class V>
class Freshness {
 public:
  using Dur = TimePoint::duration;

  Freshness(const FreshnessOptions& o, std::shared_ptr<Clock> clock)
      : clock_(std::move(clock)),
        coarse_(internal::is_system_clock(*clock_)),
        ttl_(std::chrono::duration_cast<Dur>(o.ttl)),
        swr_(std::chrono::duration_cast<Dur>(o.stale_while_revalidate)),
        sie_(std::chrono::duration_cast<Dur>(o.stale_if_error)),
        stale_span_(std::max(swr_, sie_)),
        refresh_window_(Dur(static_cast<Dur::rep>(
            std::llround(static_cast<double>(ttl_.count()) * (1.0 - o.refresh_ahead))))),
        error_backoff_(std::chrono::duration_cast<Dur>(o.error_backoff)),
        jitter_(o.ttl_jitter),
        refresh_ahead_(o.refresh_ahead > 0.0) {}

  // now: the exact clock.
  TimePoint now() const { return clock_->now(); }
  const std::shared_ptr<Clock>& clock() const { return clock_; }
  // is_system_clock: the clock is the SystemClock (real time passes by itself).
  bool is_system_clock() const { return coarse_; }

  // read_now: the instant a read classifies entries by (see above).
  TimePoint read_now() const { return internal::read_now(*clock_, coarse_); }

  Action classify(const Entry<V>& e, TimePoint now) const {
    if (now < e.fresh_until) {
      if (refresh_ahead_ && now >= e.fresh_until - refresh_window_) return Action::kRefreshAhead;
      return Action::kFresh;
    }
    if (now >= e.stale_until) return Action::kExpired;
    if (now < e.fresh_until + swr_) return Action::kStaleServe;
    return Action::kStaleLoad;
  }

  // fresh_as_returned: whether e, as a store that judges expiry by the
  // cache's clock returned it, is a fresh hit with no clock read here. Such
  // a store returns only entries with now_s < stale_until at the instant
  // now_s it looked (Store's contract), which is no earlier than a read_now()
  // taken before the call. An entry with fresh_until == stale_until (no
  // stale span: every entry of a cache without stale_while_revalidate and
  // stale_if_error) is then fresh at that instant, so classify would say
  // kFresh; with refresh_ahead it might say kRefreshAhead, so never then.
  bool fresh_as_returned(const Entry<V>& e) const {
    return !refresh_ahead_ && e.fresh_until == e.stale_until;
  }

  // can_fall_back: whether a failed load may be answered with `stale`.
  bool can_fall_back(const std::optional<Entry<V>>& stale, TimePoint now) const {
    return stale.has_value() && sie_.count() > 0 && now < stale->stale_until;
  }

  // make_entry: the entry for a value loaded or put at now.
  Entry<V> make_entry(V value, TimePoint now) const {
    Dur ttl = ttl_;
    if (jitter_ > 0.0) {
      const double u = (2.0 * unit_random() - 1.0) * jitter_;
      ttl = std::chrono::duration_cast<Dur>(
          std::chrono::duration<double, Dur::period>(ttl_.count() * (1.0 + u)));
    }
    const TimePoint fresh = now + ttl;
    return Entry<V>{std::move(value), fresh, fresh + stale_span_};
  }

  // fail_safe: after a failed load of a key with a stale value to fall back
  // on, the entry to keep serving (fresh for error_backoff, never past its
  // stale_until); nullopt when there is no fallback or no back-off.
  std::optional<Entry<V>> fail_safe(const std::optional<Entry<V>>& stale, TimePoint now) const {
    if (!can_fall_back(stale, now) || error_backoff_.count() <= 0) return std::nullopt;
    Entry<V> kept = *stale;
    kept.fresh_until = std::min(now + error_backoff_, kept.stale_until);
    return kept;
  }

  Dur error_backoff() const { return error_backoff_; }

 private:
  // unit_random: uniform in [0, 1), from a per-thread splitmix64. Not
  // absl::InsecureBitGen: its seed pool lives in an abseil library that
  // Debian does not build for ThreadSanitizer, which then reports races.
  static double unit_random() {
    thread_local std::uint64_t state = (static_cast<std::uint64_t>(std::random_device{}()) << 32) ^
                                       std::random_device{}() ^
                                       reinterpret_cast<std::uintptr_t>(&state);
    std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return static_cast<double>(z >> 11) * 0x1.0p-53;
  }

  std::shared_ptr<Clock> clock_;
  bool coarse_;
  Dur ttl_, swr_, sie_, stale_span_, refresh_window_, error_backoff_;
  double jitter_;
  bool refresh_ahead_;
};

}  // namespace larder::internal

#endif  // LARDER_INTERNAL_FRESHNESS_H_
