// SPDX-License-Identifier: Apache-2.0
#include "larder/executor.h"

#include <atomic>
#include <latch>
#include <stdexcept>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/testing/testing.h"

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
  auto pool =
      std::make_unique<ThreadPoolExecutor>(ThreadPoolOptions{.threads = 1, .queue_capacity = 2});
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
  // One worker: the tasks after the throwing ones run only if that worker
  // caught both exceptions (a std::exception and a non-std one) and went on,
  // in order, on the same thread.
  ThreadPoolExecutor pool(ThreadPoolOptions{.threads = 1, .queue_capacity = 8});
  std::thread::id thrower, runner;
  std::vector<int> order;  // written by the single worker only
  std::latch done(1);
  ASSERT_TRUE(pool.try_execute([&] {
    thrower = std::this_thread::get_id();
    order.push_back(1);
    throw std::runtime_error("task failed");
  }));
  ASSERT_TRUE(pool.try_execute([&] {
    order.push_back(2);
    throw 42;
  }));
  ASSERT_TRUE(pool.try_execute([&] {
    runner = std::this_thread::get_id();
    order.push_back(3);
    done.count_down();
  }));
  ASSERT_TRUE(testing::eventually([&] { return done.try_wait(); }))
      << "the task queued after two throwing ones never ran";
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(thrower, runner);
  EXPECT_NE(runner, std::this_thread::get_id());
  EXPECT_EQ(pool.queued(), 0u);
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
