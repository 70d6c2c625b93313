// SPDX-License-Identifier: Apache-2.0
//
// ManualExecutor: an Executor whose tasks run only when the test says so
// (run_one / run_all), on the test's thread. With a capacity it also models
// a full queue (try_execute returns false).
#ifndef LARDER_TESTS_TESTING_MANUAL_EXECUTOR_H_
#define LARDER_TESTS_TESTING_MANUAL_EXECUTOR_H_

#include <cstddef>
#include <deque>
#include <functional>
#include <limits>

#include "larder/executor.h"
#include "larder/internal/mutex.h"

namespace larder::testing {

class ManualExecutor final : public Executor {
 public:
  explicit ManualExecutor(std::size_t capacity = std::numeric_limits<std::size_t>::max())
      : capacity_(capacity) {}

  bool try_execute(std::function<void()> task) override {
    internal::MutexLock l(&mu_);
    if (queue_.size() >= capacity_) {
      ++rejected_;
      return false;
    }
    queue_.push_back(std::move(task));
    return true;
  }

  // run_one: runs the oldest queued task; false when none was queued.
  bool run_one() {
    std::function<void()> task;
    {
      internal::MutexLock l(&mu_);
      if (queue_.empty()) return false;
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    task();
    return true;
  }

  // run_all: runs tasks until the queue is empty (including tasks queued by
  // tasks); returns how many ran.
  std::size_t run_all() {
    std::size_t n = 0;
    while (run_one()) ++n;
    return n;
  }

  std::size_t pending() const {
    internal::MutexLock l(&mu_);
    return queue_.size();
  }
  std::size_t rejected() const {
    internal::MutexLock l(&mu_);
    return rejected_;
  }

 private:
  const std::size_t capacity_;
  mutable internal::Mutex mu_;
  std::deque<std::function<void()>> queue_;
  std::size_t rejected_ = 0;
};

}  // namespace larder::testing

#endif  // LARDER_TESTS_TESTING_MANUAL_EXECUTOR_H_
