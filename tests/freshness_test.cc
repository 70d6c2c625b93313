// SPDX-License-Identifier: Apache-2.0
//
// Freshness (internal/freshness.h): what a read does with an entry of each
// age, the stale fallback and the fail-safe entry, on a ManualClock.
// ExpiringKeySet (internal/expiring_key_set.h): markers expire, the bound
// holds, erase/clear forget.
#include "larder/internal/freshness.h"

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "gtest/gtest.h"
#include "larder/clock.h"
#include "larder/internal/expiring_key_set.h"

namespace larder::internal {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

class FreshnessTest : public ::testing::Test {
 protected:
  std::shared_ptr<ManualClock> clock_ = std::make_shared<ManualClock>(TimePoint(seconds(1000)));
  TimePoint t0() const { return TimePoint(seconds(1000)); }
};

TEST_F(FreshnessTest, ClassifiesEveryAgeAtItsBoundaries) {
  // ttl 10 s, refresh-ahead at 80% (2 s before fresh_until), swr 5 s, sie 20 s.
  Freshness<int> f({.ttl = seconds(10),
                    .stale_while_revalidate = seconds(5),
                    .stale_if_error = seconds(20),
                    .refresh_ahead = 0.8},
                   clock_);
  const Entry<int> e = f.make_entry(7, t0());
  EXPECT_EQ(e.value, 7);
  EXPECT_EQ(e.fresh_until, t0() + seconds(10));
  EXPECT_EQ(e.stale_until, t0() + seconds(30));  // fresh_until + max(swr, sie)
  EXPECT_EQ(f.classify(e, t0()), Action::kFresh);
  EXPECT_EQ(f.classify(e, t0() + seconds(8) - milliseconds(1)), Action::kFresh);
  EXPECT_EQ(f.classify(e, t0() + seconds(8)), Action::kRefreshAhead);
  EXPECT_EQ(f.classify(e, t0() + seconds(10)), Action::kStaleServe);
  EXPECT_EQ(f.classify(e, t0() + seconds(15) - milliseconds(1)), Action::kStaleServe);
  EXPECT_EQ(f.classify(e, t0() + seconds(15)), Action::kStaleLoad);
  EXPECT_EQ(f.classify(e, t0() + seconds(30) - milliseconds(1)), Action::kStaleLoad);
  EXPECT_EQ(f.classify(e, t0() + seconds(30)), Action::kExpired);
}

TEST_F(FreshnessTest, WithoutRefreshAheadAFreshEntryIsFreshUntilItsEnd) {
  Freshness<int> f({.ttl = seconds(10)}, clock_);
  const Entry<int> e = f.make_entry(1, t0());
  EXPECT_EQ(f.classify(e, t0() + seconds(10) - milliseconds(1)), Action::kFresh);
  EXPECT_EQ(f.classify(e, t0() + seconds(10)), Action::kExpired);  // no stale span
}

TEST_F(FreshnessTest, FallsBackOnlyWithStaleIfErrorAndBeforeStaleUntil) {
  Freshness<int> no_sie({.ttl = seconds(10), .stale_while_revalidate = seconds(5)}, clock_);
  std::optional<Entry<int>> stale = no_sie.make_entry(1, t0());
  EXPECT_FALSE(no_sie.can_fall_back(stale, t0() + seconds(12)));

  Freshness<int> f({.ttl = seconds(10), .stale_if_error = seconds(5)}, clock_);
  stale = f.make_entry(1, t0());
  EXPECT_TRUE(f.can_fall_back(stale, t0() + seconds(12)));
  EXPECT_FALSE(f.can_fall_back(stale, t0() + seconds(15)));
  EXPECT_FALSE(f.can_fall_back(std::nullopt, t0()));
}

TEST_F(FreshnessTest, FailSafeKeepsTheStaleValueFreshForTheBackoffButNotPastStaleUntil) {
  Freshness<int> f({.ttl = seconds(10), .stale_if_error = seconds(5), .error_backoff = seconds(2)},
                   clock_);
  const std::optional<Entry<int>> stale = f.make_entry(9, t0());
  std::optional<Entry<int>> kept = f.fail_safe(stale, t0() + seconds(11));
  ASSERT_TRUE(kept.has_value());
  EXPECT_EQ(kept->value, 9);
  EXPECT_EQ(kept->fresh_until, t0() + seconds(13));
  EXPECT_EQ(kept->stale_until, stale->stale_until);
  kept = f.fail_safe(stale, t0() + seconds(14));  // 14 + 2 > stale_until = 15
  ASSERT_TRUE(kept.has_value());
  EXPECT_EQ(kept->fresh_until, t0() + seconds(15));
  EXPECT_FALSE(f.fail_safe(stale, t0() + seconds(15)).has_value());  // past stale_until

  Freshness<int> no_backoff({.ttl = seconds(10), .stale_if_error = seconds(5)}, clock_);
  EXPECT_FALSE(no_backoff.fail_safe(stale, t0() + seconds(11)).has_value());
}

TEST_F(FreshnessTest, JitterStaysWithinItsBoundsAndVaries) {
  Freshness<int> f({.ttl = seconds(10), .ttl_jitter = 0.2}, clock_);
  TimePoint lo = TimePoint::max(), hi = TimePoint::min();
  for (int i = 0; i < 2000; ++i) {
    const Entry<int> e = f.make_entry(i, t0());
    ASSERT_GE(e.fresh_until, t0() + seconds(8));
    ASSERT_LE(e.fresh_until, t0() + seconds(12));
    lo = std::min(lo, e.fresh_until);
    hi = std::max(hi, e.fresh_until);
  }
  EXPECT_GT(hi - lo, seconds(2));  // 2000 draws spread over most of +-2 s
}

TEST_F(FreshnessTest, AManualClockIsReadExactly) {
  Freshness<int> f({.ttl = seconds(1)}, clock_);
  EXPECT_FALSE(f.is_system_clock());
  clock_->advance(milliseconds(3));
  EXPECT_EQ(f.read_now(), t0() + milliseconds(3));
  EXPECT_EQ(f.now(), t0() + milliseconds(3));
}

TEST(ExpiringKeySetTest, AMarkerLastsUntilItsInstant) {
  ExpiringKeySet<std::string> set(100);
  const TimePoint t(seconds(50));
  EXPECT_FALSE(set.contains("a", t));
  EXPECT_TRUE(set.add("a", t + seconds(2), t));
  EXPECT_TRUE(set.contains("a", t));
  EXPECT_TRUE(set.contains("a", t + seconds(2) - milliseconds(1)));
  EXPECT_FALSE(set.contains("a", t + seconds(2)));
  EXPECT_FALSE(set.contains("a", t));  // the expired marker was dropped
}

TEST(ExpiringKeySetTest, EraseAndClearForget) {
  ExpiringKeySet<std::string> set(100);
  const TimePoint t(seconds(50));
  set.add("a", t + seconds(5), t);
  set.add("b", t + seconds(5), t);
  set.erase("a");
  EXPECT_FALSE(set.contains("a", t));
  EXPECT_TRUE(set.contains("b", t));
  set.clear();
  EXPECT_FALSE(set.contains("b", t));
}

TEST(ExpiringKeySetTest, IsBoundedAndReusesRoomOfExpiredMarkers) {
  // 16 shards of max_entries / 16 + 1 = 2 each: at most 32 live markers.
  ExpiringKeySet<int> set(16);
  const TimePoint t(seconds(50));
  int stored = 0;
  for (int k = 0; k < 1000; ++k) stored += set.add(k, t + seconds(1), t) ? 1 : 0;
  EXPECT_LE(stored, 32);
  EXPECT_GE(stored, 16);
  // Once those expired, new keys find room again.
  int later = 0;
  for (int k = 1000; k < 2000; ++k) later += set.add(k, t + seconds(3), t + seconds(2)) ? 1 : 0;
  EXPECT_GE(later, 16);
  EXPECT_FALSE(set.contains(0, t + seconds(2)));
}

}  // namespace
}  // namespace larder::internal
