// SPDX-License-Identifier: Apache-2.0
#include "larder/internal/timer_wheel.h"

#include <algorithm>
#include <cstdint>
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
  const std::vector<std::int64_t> offsets{kSec / 2, 3 * kSec, 70 * kSec, 2 * 3600 * kSec,
                                          3 * 86400 * kSec, 30 * 86400 * kSec};
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

}  // namespace
}  // namespace larder::internal
