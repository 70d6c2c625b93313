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
// machines (DESIGN.md, "The entry and its three ages").
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

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>

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
  explicit ManualClock(TimePoint start = {})
      : ticks_(start.time_since_epoch().count()) {}

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
  void set(TimePoint t) {
    ticks_.store(t.time_since_epoch().count(), std::memory_order_release);
  }

 private:
  std::atomic<TimePoint::duration::rep> ticks_;
};

// clock_or_default: the clock to use when an options struct may hold null.
inline std::shared_ptr<Clock> clock_or_default(std::shared_ptr<Clock> clock) {
  return clock ? std::move(clock) : system_clock();
}

// to_unix_millis / from_unix_millis: the wire form of an instant (milliseconds
// since the Unix epoch), used by stores that leave the process.
inline std::int64_t to_unix_millis(TimePoint t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch())
      .count();
}
inline TimePoint from_unix_millis(std::int64_t ms) {
  return TimePoint(std::chrono::duration_cast<TimePoint::duration>(
      std::chrono::milliseconds(ms)));
}

}  // namespace larder

#endif  // LARDER_CLOCK_H_
