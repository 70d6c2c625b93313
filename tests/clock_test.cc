// SPDX-License-Identifier: Apache-2.0
#include "larder/clock.h"

#include <chrono>
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

}  // namespace
}  // namespace larder
