// SPDX-License-Identifier: Apache-2.0
#include "larder/executor.h"

#include <atomic>
#include <latch>
#include <stdexcept>

#include "gtest/gtest.h"

namespace larder {
namespace {

TEST(ThreadPoolExecutorTest, RunsEveryTask) {
  ThreadPoolExecutor pool(ThreadPoolOptions{.threads = 2, .queue_capacity = 256});
  constexpr int kTasks = 200;
  std::atomic<int> ran{0};
  std::latch done(kTasks);
  for (int i = 0; i < kTasks; ++i) {
    ASSERT_TRUE(pool.try_execute([&] {
      ran.fetch_add(1);
      done.count_down();
    }));
  }
  done.wait();
  EXPECT_EQ(ran.load(), kTasks);
}

TEST(ThreadPoolExecutorTest, RejectsWhenTheQueueIsFullWithoutBlocking) {
  auto pool = std::make_unique<ThreadPoolExecutor>(
      ThreadPoolOptions{.threads = 1, .queue_capacity = 2});
  std::latch started(1), release(1);
  std::atomic<int> ran{0};
  ASSERT_TRUE(pool->try_execute([&] {
    started.count_down();
    release.wait();
    ran.fetch_add(1);
  }));
  started.wait();  // the worker is busy; the queue is empty
  EXPECT_TRUE(pool->try_execute([&] { ran.fetch_add(1); }));
  EXPECT_TRUE(pool->try_execute([&] { ran.fetch_add(1); }));
  EXPECT_FALSE(pool->try_execute([&] { ran.fetch_add(100); }));
  EXPECT_EQ(pool->queued(), 2u);
  release.count_down();
  pool.reset();  // drains what was queued
  EXPECT_EQ(ran.load(), 3);
}

TEST(ThreadPoolExecutorTest, SurvivesAThrowingTask) {
  ThreadPoolExecutor pool(ThreadPoolOptions{.threads = 1, .queue_capacity = 4});
  std::latch done(1);
  ASSERT_TRUE(pool.try_execute([] { throw std::runtime_error("task failed"); }));
  ASSERT_TRUE(pool.try_execute([&] { done.count_down(); }));
  done.wait();
}

TEST(ThreadPoolExecutorTest, RejectsZeroThreadsOrCapacity) {
  EXPECT_THROW(ThreadPoolExecutor(ThreadPoolOptions{.threads = 0}), std::invalid_argument);
  EXPECT_THROW(ThreadPoolExecutor(ThreadPoolOptions{.threads = 1, .queue_capacity = 0}),
               std::invalid_argument);
}

TEST(ThreadPoolExecutorTest, DefaultExecutorIsOneSharedPool) {
  std::shared_ptr<Executor> a = default_executor();
  EXPECT_EQ(a, default_executor());
  std::latch done(1);
  ASSERT_TRUE(a->try_execute([&] { done.count_down(); }));
  done.wait();
}

}  // namespace
}  // namespace larder
