// SPDX-License-Identifier: Apache-2.0
#include "larder/clock.h"

#include <chrono>
#include <cstdint>
#include <limits>
#include <memory>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace larder {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

TEST(ManualClockTest, StartsWhereToldAndMovesOnlyWhenTold) {
  const TimePoint start = from_unix_millis(1'700'000'000'000);
  ManualClock clock(start);
  EXPECT_EQ(clock.now(), start);
  EXPECT_EQ(clock.now(), start);
  clock.advance(seconds(5));
  EXPECT_EQ(clock.now(), start + seconds(5));
  clock.advance(-milliseconds(500));
  EXPECT_EQ(clock.now(), start + milliseconds(4500));
  clock.set(start);
  EXPECT_EQ(clock.now(), start);
}

TEST(ManualClockTest, ConcurrentAdvancesAllCount) {
  ManualClock clock;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) clock.advance(milliseconds(1));
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(clock.now(), TimePoint{} + seconds(4));
}

TEST(SystemClockTest, IsSharedAndTracksSystemTime) {
  auto a = system_clock();
  auto b = system_clock();
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a.get(), b.get());
  const TimePoint before = std::chrono::system_clock::now();
  const TimePoint mid = a->now();
  const TimePoint after = std::chrono::system_clock::now();
  EXPECT_LE(before, mid);
  EXPECT_LE(mid, after);
}

// internal::read_now, the instant reads check expiry against: coarse for the
// system clock, so it may lag (an entry read live up to one kernel tick past
// its stale_until) but must never run ahead of the exact clock (an entry
// expired early); any other clock is read exactly.
TEST(ClockTest, ReadNowIsCoarseOnlyForTheSystemClockAndNeverAhead) {
  const std::shared_ptr<Clock> sys = system_clock();
  EXPECT_TRUE(internal::is_system_clock(*sys));
  ManualClock manual(from_unix_millis(1'700'000'000'123));
  EXPECT_FALSE(internal::is_system_clock(manual));
  EXPECT_EQ(internal::read_now(manual, false), manual.now());
  for (int i = 0; i < 10'000; ++i) {
    const TimePoint before = sys->now();
    const TimePoint coarse = internal::read_now(*sys, true);
    const TimePoint after = sys->now();
    ASSERT_LE(coarse, after) << "the coarse read ran ahead of the exact clock";
    // It lags by at most one kernel tick (1-4 ms); 100 ms leaves room for a
    // clock slewed by NTP between the reads.
    ASSERT_GE(coarse, before - milliseconds(100)) << "lags by more than a tick";
  }
}

TEST(ClockTest, ClockOrDefaultReplacesNullOnly) {
  auto manual = std::make_shared<ManualClock>();
  EXPECT_EQ(clock_or_default(manual).get(), manual.get());
  EXPECT_EQ(clock_or_default(nullptr).get(), system_clock().get());
}

TEST(ClockTest, UnixMillisRoundTrip) {
  const std::int64_t ms = 1'234'567'890'123;
  EXPECT_EQ(to_unix_millis(from_unix_millis(ms)), ms);
  EXPECT_EQ(to_unix_millis(TimePoint{}), 0);
  // Sub-millisecond parts are truncated, not rounded.
  EXPECT_EQ(to_unix_millis(from_unix_millis(ms) + std::chrono::microseconds(999)), ms);
}

// ---- Conversions at the extremes (issue 10): no input overflows ----
// (The asan preset runs this with UBSan and -fno-sanitize-recover, so an
// overflow anywhere below aborts the test.)

constexpr std::int64_t kI64Min = std::numeric_limits<std::int64_t>::min();
constexpr std::int64_t kI64Max = std::numeric_limits<std::int64_t>::max();

TEST(ClockTest, UnixMillisRangeIsWhatATimePointHolds) {
  // A nanosecond system_clock (libstdc++): +-9223372036854 ms, years 1677..2262.
  if constexpr (std::is_same_v<TimePoint::duration, std::chrono::nanoseconds>) {
    EXPECT_EQ(kMaxUnixMillis, 9'223'372'036'854);
    EXPECT_EQ(kMinUnixMillis, -9'223'372'036'854);
  }
  EXPECT_EQ(to_unix_millis(TimePoint::max()), kMaxUnixMillis);
  EXPECT_EQ(to_unix_millis(TimePoint::min()), kMinUnixMillis);
  // The ends of the range convert exactly and round-trip.
  for (std::int64_t ms : {kMinUnixMillis, kMinUnixMillis + 1, std::int64_t{-1}, std::int64_t{0},
                          std::int64_t{1}, kMaxUnixMillis - 1, kMaxUnixMillis}) {
    std::optional<TimePoint> t = from_unix_millis_checked(ms);
    ASSERT_TRUE(t.has_value()) << ms;
    EXPECT_EQ(to_unix_millis(*t), ms);
    EXPECT_EQ(from_unix_millis(ms), *t) << ms;
  }
  EXPECT_EQ(*from_unix_millis_checked(-1), TimePoint{} - milliseconds(1));
}

TEST(ClockTest, OutOfRangeMillisAreRefusedOrSaturateNeverOverflow) {
  for (std::int64_t ms :
       {kI64Min, kI64Min + 1, kMinUnixMillis - 1, std::int64_t{-9'223'372'036'855}}) {
    EXPECT_FALSE(from_unix_millis_checked(ms).has_value()) << ms;
    EXPECT_EQ(from_unix_millis(ms), TimePoint::min()) << ms;
  }
  // 1.05e13 ms: the stale_until with bit 43 flipped (after 2262).
  for (std::int64_t ms :
       {kI64Max, kI64Max - 1, kMaxUnixMillis + 1, std::int64_t{10'496'376'060'000}}) {
    EXPECT_FALSE(from_unix_millis_checked(ms).has_value()) << ms;
    EXPECT_EQ(from_unix_millis(ms), TimePoint::max()) << ms;
  }
}

TEST(ClockTest, EveryTimePointHasRepresentableMillis) {
  // What to_unix_millis writes, from_unix_millis_checked reads back: a header
  // this process wrote is never refused as out of range.
  for (TimePoint t : {TimePoint::min(), TimePoint::min() + std::chrono::nanoseconds(1),
                      TimePoint{} - std::chrono::nanoseconds(1), TimePoint{},
                      TimePoint::max() - std::chrono::nanoseconds(1), TimePoint::max()}) {
    const std::optional<TimePoint> back = from_unix_millis_checked(to_unix_millis(t));
    ASSERT_TRUE(back.has_value()) << t.time_since_epoch().count();
    EXPECT_LT(std::chrono::abs(*back - t), milliseconds(1));
  }
}

TEST(ClockTest, SaturatingAddClampsInsteadOfOverflowing) {
  const TimePoint t = from_unix_millis(1'700'000'000'000);
  EXPECT_EQ(saturating_add(t, seconds(5)), t + seconds(5));
  EXPECT_EQ(saturating_add(t, -seconds(5)), t - seconds(5));
  EXPECT_EQ(saturating_add(t, std::chrono::nanoseconds(1)), t + std::chrono::nanoseconds(1));
  // Durations whose conversion to nanoseconds alone would overflow.
  EXPECT_EQ(saturating_add(t, milliseconds::max()), TimePoint::max());
  EXPECT_EQ(saturating_add(t, milliseconds::min()), TimePoint::min());
  EXPECT_EQ(saturating_add(t, std::chrono::hours::max()), TimePoint::max());
  // Fits in nanoseconds, but not once added.
  EXPECT_EQ(saturating_add(t, std::chrono::nanoseconds::max()), TimePoint::max());
  EXPECT_EQ(saturating_add(TimePoint{} - seconds(1), std::chrono::nanoseconds::min()),
            TimePoint::min());
  EXPECT_EQ(saturating_add(TimePoint::max(), std::chrono::nanoseconds(1)), TimePoint::max());
  EXPECT_EQ(saturating_add(TimePoint::min(), -std::chrono::nanoseconds(1)), TimePoint::min());
  EXPECT_EQ(saturating_add(TimePoint::max(), -std::chrono::nanoseconds(1)),
            TimePoint::max() - std::chrono::nanoseconds(1));
  // A narrow rep (int seconds) and another clock.
  EXPECT_EQ(saturating_add(t, std::chrono::duration<int>(3)), t + seconds(3));
  const auto s = std::chrono::steady_clock::now();
  EXPECT_EQ(saturating_add(s, milliseconds::max()), std::chrono::steady_clock::time_point::max());
  EXPECT_EQ(saturating_add(s, milliseconds(7)), s + milliseconds(7));
}

}  // namespace
}  // namespace larder
