// SPDX-License-Identifier: Apache-2.0
//
// Clock: the one source of time in larder.
//
// Every time-dependent part (stores, the cache, the write-back flusher, locks)
// reads the time from a `Clock` taken from its options, never from
// `std::chrono` directly. Production code uses `system_clock()`; tests use
// `ManualClock`, whose time moves only when the test says so. That is what lets
// a test make an entry expire without sleeping.
//
// Time is wall-clock (`std::chrono::system_clock`) because instants leave the
// process: a Redis entry's fresh_until is read by other processes on other
// machines (store.h, Entry).
//
// Thread-safety: every method of every Clock here may be called concurrently.
//
// Example:
//
//   auto clock = std::make_shared<larder::ManualClock>();
//   larder::LocalStoreOptions opts{.clock = clock};
//   ...
//   clock->advance(std::chrono::minutes(2));   // everything with ttl < 2 min is now stale
#ifndef LARDER_CLOCK_H_
#define LARDER_CLOCK_H_

#include <time.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <ratio>
#include <type_traits>

namespace larder {

using TimePoint = std::chrono::system_clock::time_point;

// Clock: the abstract time source. Implementations must be thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;
  // now: the current wall-clock instant. Cheap; safe to call concurrently.
  virtual TimePoint now() const = 0;
};

// SystemClock: std::chrono::system_clock, the production default.
class SystemClock final : public Clock {
 public:
  TimePoint now() const override { return std::chrono::system_clock::now(); }
};

// system_clock: the process-wide SystemClock. Never null; the same instance on
// every call.
inline std::shared_ptr<Clock> system_clock() {
  static const std::shared_ptr<Clock> clock = std::make_shared<SystemClock>();
  return clock;
}

// ManualClock: a clock for tests. Its time changes only through advance() and
// set(); reads and writes are atomic, so a test thread may move time while
// cache threads read it.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(TimePoint start = {}) : ticks_(start.time_since_epoch().count()) {}

  TimePoint now() const override {
    return TimePoint(TimePoint::duration(ticks_.load(std::memory_order_acquire)));
  }

  // advance: moves time forward by d (a negative d moves it back; allowed, for
  // tests of clock skew).
  void advance(std::chrono::nanoseconds d) {
    ticks_.fetch_add(std::chrono::duration_cast<TimePoint::duration>(d).count(),
                     std::memory_order_acq_rel);
  }

  // set: moves time to t.
  void set(TimePoint t) { ticks_.store(t.time_since_epoch().count(), std::memory_order_release); }

 private:
  std::atomic<TimePoint::duration::rep> ticks_;
};

namespace internal {

// is_system_clock: whether c is the SystemClock (real time passes by itself).
inline bool is_system_clock(const Clock& c) {
  return dynamic_cast<const SystemClock*>(&c) != nullptr;
}

}  // namespace internal

// same_clock: whether a and b tell the same time: one object, or both the
// system clock. Cache and TieredStore refuse a store that reads another clock
// than theirs (time is set once).
inline bool same_clock(const Clock& a, const Clock& b) {
  return &a == &b || (internal::is_system_clock(a) && internal::is_system_clock(b));
}

namespace internal {

// read_now: the instant a read compares expiry instants with. With the
// SystemClock (coarse == is_system_clock(c)) it is CLOCK_REALTIME_COARSE:
// about 3 ns instead of about 20 ns for clock_gettime(CLOCK_REALTIME) on the
// benchmark machine, where it was the largest cost of a hit after the index
// probe. Its resolution is the kernel tick (1 to 4 ms) and it never runs
// ahead of the exact clock, so an entry may be read as live up to one tick
// past its stale_until, never expired early. Any other Clock (ManualClock in
// tests) is read exactly. Writes and expiry sweeps use the exact now().
inline TimePoint read_now(const Clock& c, bool coarse) {
#if defined(__linux__) && defined(CLOCK_REALTIME_COARSE)
  if (coarse) {
    timespec ts;
    if (clock_gettime(CLOCK_REALTIME_COARSE, &ts) == 0) {
      return TimePoint(std::chrono::duration_cast<TimePoint::duration>(
          std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec)));
    }
  }
#else
  (void)coarse;
#endif
  return c.now();
}

}  // namespace internal

// clock_or_default: the clock to use when an options struct may hold null.
inline std::shared_ptr<Clock> clock_or_default(std::shared_ptr<Clock> clock) {
  return clock ? std::move(clock) : system_clock();
}

// ---- The wire form of an instant: whole milliseconds since the Unix epoch ----
//
// Instants leave the process as int64 milliseconds (a Redis entry's header,
// written by one process and read by another). A TimePoint holds fewer
// instants than an int64 of milliseconds names: system_clock counts
// nanoseconds in an int64 on libstdc++, so it spans only about +-292 years
// around 1970 (+-9.22e12 ms), while the int64 spans +-2.9e8 years. Turning
// milliseconds into a TimePoint multiplies by 1e6, and for any value outside
// [kMinUnixMillis, kMaxUnixMillis] that multiplication overflows, which is
// undefined behaviour and in practice wraps to an unrelated instant (a
// stale_until in the year 2300 becomes one in 1721). Bytes from outside the
// process may hold any int64, so:
//
//   to_unix_millis(t)              total: every TimePoint's milliseconds are in
//                                  [kMinUnixMillis, kMaxUnixMillis] (truncated
//                                  towards zero, like duration_cast).
//   from_unix_millis_checked(ms)   nullopt outside that range: for decoding
//                                  bytes, where such a value means corruption.
//   from_unix_millis(ms)           saturates: below the range TimePoint::min(),
//                                  above it TimePoint::max(). Never overflows.
//
// Inside the range the conversions are exact inverses at millisecond
// granularity: from_unix_millis_checked(to_unix_millis(t)) always has a value.
//
// saturating_add(t, d) is t + d clamped to the time_point's range, for
// durations that come from configuration or from outside and may be huge
// ("wait forever" as milliseconds::max()).

static_assert(std::ratio_less_equal_v<TimePoint::period, std::milli>,
              "to_unix_millis assumes a TimePoint at least as fine as a millisecond");

// kMinUnixMillis / kMaxUnixMillis: the milliseconds since the Unix epoch a
// TimePoint can represent (about years 1678 and 2262 with a nanosecond clock).
inline constexpr std::int64_t kMinUnixMillis =
    std::chrono::duration_cast<std::chrono::milliseconds>(TimePoint::min().time_since_epoch())
        .count();
inline constexpr std::int64_t kMaxUnixMillis =
    std::chrono::duration_cast<std::chrono::milliseconds>(TimePoint::max().time_since_epoch())
        .count();

// to_unix_millis: t as whole milliseconds since the Unix epoch (sub-millisecond
// parts truncated towards zero). Total; the result is in [kMinUnixMillis,
// kMaxUnixMillis].
inline std::int64_t to_unix_millis(TimePoint t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

// from_unix_millis_checked: the instant ms milliseconds after the Unix epoch,
// or nullopt when a TimePoint cannot represent it (ms outside [kMinUnixMillis,
// kMaxUnixMillis]). Use it for bytes read from outside the process.
inline std::optional<TimePoint> from_unix_millis_checked(std::int64_t ms) {
  if (ms < kMinUnixMillis || ms > kMaxUnixMillis) return std::nullopt;
  return TimePoint(std::chrono::duration_cast<TimePoint::duration>(std::chrono::milliseconds(ms)));
}

// from_unix_millis: the instant ms milliseconds after the Unix epoch,
// saturating at TimePoint::min() / TimePoint::max() outside [kMinUnixMillis,
// kMaxUnixMillis]. Defined for every int64.
inline TimePoint from_unix_millis(std::int64_t ms) {
  if (ms < kMinUnixMillis) return TimePoint::min();
  if (ms > kMaxUnixMillis) return TimePoint::max();
  return *from_unix_millis_checked(ms);
}

// saturating_add: t + d, clamped to [time_point::min(), time_point::max()]
// instead of overflowing. For integral durations of any unit and any clock
// (std::chrono::steady_clock too).
template <class C, class Dur, class Rep, class Period>
requires std::is_integral_v<Rep> && std::is_signed_v<Rep> &&
    std::is_integral_v<typename Dur::rep> && std::is_signed_v<typename Dur::rep>
        std::chrono::time_point<C, Dur> saturating_add(std::chrono::time_point<C, Dur> t,
                                                       std::chrono::duration<Rep, Period> d) {
  using TP = std::chrono::time_point<C, Dur>;
  Dur step;
  if constexpr (std::ratio_less_equal_v<typename Dur::period, Period>) {
    // d's unit is as coarse as t's or coarser, so d may not fit in Dur: compare
    // it, in its own unit, with Dur's limits converted down (a division, which
    // cannot overflow; the common rep keeps a narrow Rep from truncating them).
    using DC = std::chrono::duration<std::common_type_t<Rep, typename Dur::rep>, Period>;
    const DC wide(d);
    if (wide > std::chrono::duration_cast<DC>(Dur::max())) return TP::max();
    if (wide < std::chrono::duration_cast<DC>(Dur::min())) return TP::min();
    step = std::chrono::duration_cast<Dur>(wide);
  } else {
    step = std::chrono::duration_cast<Dur>(d);  // d's unit is finer: a division
  }
  const Dur since = t.time_since_epoch();
  if (step.count() > 0 && since > Dur::max() - step) return TP::max();
  if (step.count() < 0 && since < Dur::min() - step) return TP::min();
  return t + step;
}

}  // namespace larder

#endif  // LARDER_CLOCK_H_
