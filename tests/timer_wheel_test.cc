// SPDX-License-Identifier: Apache-2.0
#include "larder/internal/timer_wheel.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace larder::internal {
namespace {

struct Item : TimerHook {
  std::int64_t deadline = 0;
  int id = 0;
};
// Items: the wheel's view of a vector of items, by index.
struct Items {
  std::vector<Item>* v = nullptr;
  TimerHook& hook(std::uint32_t id) const { return (*v)[id]; }
  std::int64_t deadline(std::uint32_t id) const { return (*v)[id].deadline; }
};

constexpr std::int64_t kSec = 1'000'000'000;

TEST(TimerWheelTest, ExpiresAtEveryLevelAndNeverEarly) {
  const std::int64_t origin = 1'700'000'000 * kSec;
  const std::vector<std::int64_t> offsets{kSec / 2,        3 * kSec,         70 * kSec,
                                          2 * 3600 * kSec, 3 * 86400 * kSec, 30 * 86400 * kSec};
  std::vector<Item> items(offsets.size());
  TimerWheel<Items> wheel(origin, Items{&items});
  for (std::size_t i = 0; i < items.size(); ++i) {
    items[i].deadline = origin + offsets[i];
    items[i].id = static_cast<int>(i);
    wheel.schedule(static_cast<std::uint32_t>(i));
  }
  EXPECT_EQ(wheel.size(), items.size());
  std::vector<int> expired;
  std::int64_t now = origin;
  // Walk time in uneven steps up to 40 days; check nothing expires early and
  // everything expires within ~2 level-0 buckets of its deadline once visited.
  while (now < origin + 40 * 86400 * kSec) {
    now += (now - origin < 100 * kSec) ? kSec / 3 : 977 * kSec;
    wheel.advance(now, [&](std::uint32_t id) {
      const Item* it = &items[id];
      EXPECT_LE(it->deadline, now) << it->id;
      expired.push_back(it->id);
    });
    for (const Item& it : items) {
      if (it.scheduled()) {
        EXPECT_GT(it.deadline + (2 * kSec) + 977 * kSec, now) << it.id;
      }
    }
  }
  EXPECT_EQ(expired, (std::vector<int>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(wheel.size(), 0u);
}

TEST(TimerWheelTest, UnscheduleAndRescheduleAndPastDeadlines) {
  std::vector<Item> items(3);
  TimerWheel<Items> wheel(0, Items{&items});
  Item& a = items[0];
  Item& b = items[1];
  Item& c = items[2];
  a.deadline = 5 * kSec;
  b.deadline = 5 * kSec;
  c.deadline = -10;  // before the origin: filed in the current bucket
  wheel.schedule(0);
  wheel.schedule(1);
  wheel.schedule(2);
  wheel.unschedule(0);
  wheel.unschedule(0);  // twice: a no-op
  b.deadline = 100 * kSec;
  wheel.reschedule(1);
  int n = 0;
  wheel.advance(10 * kSec, [&](std::uint32_t id) {
    EXPECT_EQ(id, 2u);
    ++n;
  });
  EXPECT_EQ(n, 1);
  EXPECT_FALSE(a.scheduled());
  EXPECT_TRUE(b.scheduled());
  wheel.advance(5 * kSec, [&](std::uint32_t) { ADD_FAILURE() << "time went back"; });
  wheel.advance(102 * kSec, [&](std::uint32_t id) {
    EXPECT_EQ(id, 1u);
    ++n;
  });
  EXPECT_EQ(n, 2);
  EXPECT_EQ(wheel.size(), 0u);
}

TEST(TimerWheelTest, ManyEntriesInOneBucketKeepTheirLinks) {
  // Ids are 32-bit links; a bucket holding many entries, with removals in the
  // middle, must unlink and expire each exactly once.
  std::vector<Item> items(1000);
  TimerWheel<Items> wheel(0, Items{&items});
  for (std::uint32_t i = 0; i < items.size(); ++i) {
    items[i].deadline = 2 * kSec + i;
    items[i].id = static_cast<int>(i);
    wheel.schedule(i);
  }
  for (std::uint32_t i = 0; i < items.size(); i += 3) wheel.unschedule(i);
  EXPECT_EQ(wheel.size(), 666u);
  std::vector<bool> seen(items.size(), false);
  wheel.advance(10 * kSec, [&](std::uint32_t id) {
    EXPECT_NE(id % 3, 0u);
    EXPECT_FALSE(seen[id]);
    seen[id] = true;
  });
  EXPECT_EQ(wheel.size(), 0u);
  EXPECT_EQ(std::count(seen.begin(), seen.end(), true), 666);
}

TEST(TimerWheelTest, NextDueIsNeverLateAndAdvanceBeforeItDoesNothing) {
  // Random schedules, unschedules and advances (small steps and jumps over
  // every level) against a model: an advance before next_due_ns() expires
  // nothing; every advance expires exactly the entries whose level-0 tick
  // has passed, at the latest; nothing expires before its deadline; and
  // next_due_ns() is at most the end of the earliest deadline's tick.
  constexpr std::int64_t kTick = std::int64_t{1} << 30;
  constexpr std::int64_t kNever = std::numeric_limits<std::int64_t>::max();
  const std::int64_t origin = 1'700'000'000 * kSec;
  std::mt19937_64 rng(11);
  std::vector<Item> items(400);
  TimerWheel<Items> wheel(origin, Items{&items});
  EXPECT_EQ(wheel.next_due_ns(), kNever);
  std::int64_t now = origin;
  const std::vector<std::int64_t> spans{
      kSec, 10 * kSec, 100 * kSec, 2 * 3600 * kSec, 2 * 86400 * kSec, 20 * 86400 * kSec};
  // eff: the deadline as the wheel files it (a past one counts from the time
  // it was scheduled); tick_end: the end of its level-0 tick.
  std::vector<std::int64_t> eff(items.size(), 0);
  auto tick_end = [&](std::int64_t t) { return origin + ((t - origin) / kTick + 1) * kTick; };
  for (int step = 0; step < 20'000; ++step) {
    const auto id = static_cast<std::uint32_t>(rng() % items.size());
    Item& it = items[id];
    const int op = static_cast<int>(rng() % 4);
    if (op == 0) {
      if (!it.scheduled()) {
        const std::int64_t span = spans[rng() % spans.size()];
        it.deadline =
            now - kSec + static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(span));
        eff[id] = std::max(it.deadline, now);
        wheel.schedule(id);
      }
    } else if (op == 1) {
      wheel.unschedule(id);
    } else {
      // The bound is never later than the end of any deadline's tick.
      for (std::uint32_t i = 0; i < items.size(); ++i) {
        if (items[i].scheduled()) {
          ASSERT_LE(wheel.next_due_ns(), tick_end(eff[i])) << i;
        }
      }
      const std::int64_t due = wheel.next_due_ns();
      std::int64_t to = now + static_cast<std::int64_t>(
                                  rng() % static_cast<std::uint64_t>(spans[rng() % spans.size()]));
      if (op == 2 && due != kNever && due > now + 1) to = std::min(to, due - 1);
      int expired = 0;
      wheel.advance(to, [&](std::uint32_t e) {
        ASSERT_LE(items[e].deadline, to);
        ++expired;
      });
      if (to < due) {
        EXPECT_EQ(expired, 0) << "advanced before next_due_ns()";
      }
      now = std::max(now, to);
      for (std::uint32_t i = 0; i < items.size(); ++i) {
        if (items[i].scheduled()) {
          ASSERT_GT(tick_end(eff[i]), now) << "an entry whose tick passed is still scheduled";
        }
      }
    }
  }
  for (std::uint32_t i = 0; i < items.size(); ++i) wheel.unschedule(i);
  EXPECT_EQ(wheel.size(), 0u);
  EXPECT_EQ(wheel.next_due_ns(), kNever);
}

TEST(TimerWheelTest, NextDueFollowsTheEarliestBucket) {
  std::vector<Item> items(2);
  TimerWheel<Items> wheel(0, Items{&items});
  constexpr std::int64_t kTick = std::int64_t{1} << 30;
  items[0].deadline = 5 * kTick + 10;  // level 0, tick 5: due when tick 5 ends
  items[1].deadline = 100 * kTick;     // level 1 (beyond 64 ticks): cascades when its tick begins
  wheel.schedule(1);
  EXPECT_EQ(wheel.next_due_ns(), 64 * kTick);  // level-1 tick 1 begins at 2^36
  wheel.schedule(0);
  EXPECT_EQ(wheel.next_due_ns(), 6 * kTick);
  wheel.advance(6 * kTick - 1, [&](std::uint32_t) { ADD_FAILURE() << "too early"; });
  std::vector<std::uint32_t> expired;
  wheel.advance(6 * kTick, [&](std::uint32_t id) { expired.push_back(id); });
  EXPECT_EQ(expired, std::vector<std::uint32_t>{0});
  EXPECT_EQ(wheel.next_due_ns(), 64 * kTick);
  wheel.advance(64 * kTick, [&](std::uint32_t) { ADD_FAILURE() << "cascade only"; });
  EXPECT_EQ(wheel.next_due_ns(), 101 * kTick);  // now at level 0, tick 100
  wheel.advance(101 * kTick, [&](std::uint32_t id) { expired.push_back(id); });
  EXPECT_EQ(expired, (std::vector<std::uint32_t>{0, 1}));
  EXPECT_EQ(wheel.next_due_ns(), std::numeric_limits<std::int64_t>::max());
}

}  // namespace
}  // namespace larder::internal
