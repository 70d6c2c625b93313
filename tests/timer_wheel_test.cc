// SPDX-License-Identifier: Apache-2.0
#include "larder/internal/timer_wheel.h"

#include <cstdint>
#include <vector>

#include "gtest/gtest.h"

namespace larder::internal {
namespace {

struct Item : TimerHook {
  std::int64_t deadline = 0;
  int id = 0;
};
struct DeadlineOf {
  std::int64_t operator()(const TimerHook* h) const { return static_cast<const Item*>(h)->deadline; }
};

constexpr std::int64_t kSec = 1'000'000'000;

TEST(TimerWheelTest, ExpiresAtEveryLevelAndNeverEarly) {
  const std::int64_t origin = 1'700'000'000 * kSec;
  TimerWheel<DeadlineOf> wheel(origin);
  const std::vector<std::int64_t> offsets{kSec / 2, 3 * kSec, 70 * kSec, 2 * 3600 * kSec,
                                          3 * 86400 * kSec, 30 * 86400 * kSec};
  std::vector<Item> items(offsets.size());
  for (std::size_t i = 0; i < items.size(); ++i) {
    items[i].deadline = origin + offsets[i];
    items[i].id = static_cast<int>(i);
    wheel.schedule(&items[i]);
  }
  EXPECT_EQ(wheel.size(), items.size());
  std::vector<int> expired;
  std::int64_t now = origin;
  // Walk time in uneven steps up to 40 days; check nothing expires early and
  // everything expires within ~2 level-0 buckets of its deadline once visited.
  while (now < origin + 40 * 86400 * kSec) {
    now += (now - origin < 100 * kSec) ? kSec / 3 : 977 * kSec;
    wheel.advance(now, [&](TimerHook* h) {
      const Item* it = static_cast<const Item*>(h);
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
  TimerWheel<DeadlineOf> wheel(0);
  Item a, b, c;
  a.deadline = 5 * kSec;
  b.deadline = 5 * kSec;
  c.deadline = -10;  // before the origin: filed in the current bucket
  wheel.schedule(&a);
  wheel.schedule(&b);
  wheel.schedule(&c);
  wheel.unschedule(&a);
  b.deadline = 100 * kSec;
  wheel.reschedule(&b);
  int n = 0;
  wheel.advance(10 * kSec, [&](TimerHook* h) {
    EXPECT_EQ(h, &c);
    ++n;
  });
  EXPECT_EQ(n, 1);
  EXPECT_FALSE(a.scheduled());
  EXPECT_TRUE(b.scheduled());
  wheel.advance(5 * kSec, [&](TimerHook*) { ADD_FAILURE() << "time went back"; });
  wheel.advance(102 * kSec, [&](TimerHook* h) {
    EXPECT_EQ(h, &b);
    ++n;
  });
  EXPECT_EQ(n, 2);
}

}  // namespace
}  // namespace larder::internal
