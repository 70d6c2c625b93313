// SPDX-License-Identifier: Apache-2.0
//
// TimerScheduler (driven by a ManualClock: its thread polls the clock every
// millisecond, so no test sleeps) and SchedulerTether.
#include "larder/scheduler.h"

#include <atomic>
#include <barrier>
#include <chrono>
#include <memory>
#include <stdexcept>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "larder/clock.h"
#include "larder/internal/mutex.h"

namespace larder {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::seconds;

// Ran: records task ids in the order they run; wait_for waits (bounded)
// until n have run. Must outlive the scheduler that runs its tasks.
struct Ran {
  internal::Mutex mu;
  internal::CondVar cv;
  std::vector<int> ids;
  std::function<void()> task(int id) {
    return [this, id] {
      internal::MutexLock l(&mu);
      ids.push_back(id);
      cv.notify_all();
    };
  }
  std::vector<int> wait_for(std::size_t n) {
    internal::MutexLock l(&mu);
    const bool ok = cv.wait_for(l, seconds(30), [&] { return ids.size() >= n; });
    EXPECT_TRUE(ok) << "only " << ids.size() << " of " << n << " tasks ran within 30 s";
    return ids;
  }
};

std::shared_ptr<ManualClock> manual_clock() {
  return std::make_shared<ManualClock>(from_unix_millis(1'700'000'000'000));
}

TEST(TimerSchedulerTest, RunsTasksInInstantOrderAndNotBefore) {
  auto clock = manual_clock();
  Ran ran;  // outlives the scheduler's thread
  TimerScheduler sched({.clock = clock, .max_sleep = milliseconds(1)});
  const TimePoint t = clock->now();
  ASSERT_TRUE(sched.schedule(t + seconds(3), ran.task(3)));
  ASSERT_TRUE(sched.schedule(t + seconds(1), ran.task(1)));
  ASSERT_TRUE(sched.schedule(t + seconds(2), ran.task(2)));
  ASSERT_TRUE(sched.schedule(t + seconds(1), ran.task(11)));  // a tie: in scheduling order
  ASSERT_TRUE(sched.schedule(t + seconds(10), ran.task(10)));
  ASSERT_TRUE(sched.schedule(t - seconds(1), ran.task(0)));  // already past: runs at once
  EXPECT_EQ(ran.wait_for(1), std::vector<int>{0});
  clock->advance(seconds(5));
  // 10 is not due: when 3 has run, 10 has not.
  EXPECT_EQ(ran.wait_for(5), (std::vector<int>{0, 1, 11, 2, 3}));
  EXPECT_EQ(sched.pending(), 1u);
  clock->advance(seconds(5));
  EXPECT_EQ(ran.wait_for(6), (std::vector<int>{0, 1, 11, 2, 3, 10}));
}

TEST(TimerSchedulerTest, TasksMayScheduleAndThrow) {
  auto clock = manual_clock();
  Ran ran;  // outlives the scheduler's thread
  TimerScheduler sched({.clock = clock, .max_sleep = milliseconds(1)});
  ASSERT_TRUE(sched.schedule(clock->now(), [] { throw std::runtime_error("task failed"); }));
  ASSERT_TRUE(sched.schedule(clock->now(), [&] {
    ran.task(1)();
    EXPECT_TRUE(sched.schedule(clock->now(), ran.task(2)));  // from the scheduler's thread
  }));
  EXPECT_EQ(ran.wait_for(2), (std::vector<int>{1, 2}));
}

TEST(TimerSchedulerTest, DestructionDropsPendingTasksWithoutRunningThem) {
  auto clock = manual_clock();
  auto token = std::make_shared<int>(0);
  std::atomic<bool> ran{false};
  {
    TimerScheduler sched({.clock = clock, .max_sleep = milliseconds(1)});
    ASSERT_TRUE(sched.schedule(clock->now() + hours(1), [token, &ran] { ran = true; }));
    EXPECT_EQ(token.use_count(), 2);
  }
  EXPECT_FALSE(ran.load());
  EXPECT_EQ(token.use_count(), 1);
}

TEST(TimerSchedulerTest, RejectsZeroMaxSleep) {
  EXPECT_THROW(TimerScheduler({.max_sleep = milliseconds(0)}), std::invalid_argument);
}

// close() waits for a run in progress; no run starts after it.
TEST(SchedulerTetherTest, CloseWaitsForRunsInProgress) {
  for (int round = 0; round < 50; ++round) {
    internal::SchedulerTether tether;
    std::atomic<bool> finished{false};
    std::barrier started(2);
    std::thread runner([&] {
      tether.run([&] {
        started.arrive_and_wait();
        for (int i = 0; i < 1000; ++i) std::this_thread::yield();  // a run that takes a while
        finished = true;
      });
    });
    started.arrive_and_wait();  // the run is in progress
    tether.close();
    EXPECT_TRUE(finished.load()) << "close() returned while a run was in progress";
    bool after = false;
    tether.run([&] { after = true; });
    EXPECT_FALSE(after);
    runner.join();
  }
}

}  // namespace
}  // namespace larder
