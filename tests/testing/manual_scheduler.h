// SPDX-License-Identifier: Apache-2.0
//
// ManualScheduler: a Scheduler whose tasks run only when the test says so
// (run_due), on the test's thread: the test moves a ManualClock and runs
// what is due at the new time, without sleeping. Tasks due at the same
// instant run in the order they were scheduled.
#ifndef LARDER_TESTS_TESTING_MANUAL_SCHEDULER_H_
#define LARDER_TESTS_TESTING_MANUAL_SCHEDULER_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <iterator>
#include <map>
#include <optional>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "larder/clock.h"
#include "larder/internal/mutex.h"
#include "larder/scheduler.h"

namespace larder::testing {

class ManualScheduler final : public Scheduler {
 public:
  bool schedule(TimePoint at, std::function<void()> task) override {
    internal::MutexLock l(&mu_);
    if (closed_) return false;
    tasks_.emplace(std::pair{at, seq_++}, std::move(task));
    ++scheduled_;
    return true;
  }

  // run_due: runs, earliest first, every task whose instant is <= now,
  // including tasks that those tasks schedule at or before now; returns how
  // many ran.
  std::size_t run_due(TimePoint now) {
    std::size_t n = 0;
    for (;;) {
      std::function<void()> task;
      {
        internal::MutexLock l(&mu_);
        if (tasks_.empty() || tasks_.begin()->first.first > now) return n;
        task = std::move(tasks_.begin()->second);
        tasks_.erase(tasks_.begin());
      }
      task();
      ++n;
    }
  }

  // next: the earliest pending instant, if any.
  std::optional<TimePoint> next() const {
    internal::MutexLock l(&mu_);
    if (tasks_.empty()) return std::nullopt;
    return tasks_.begin()->first.first;
  }

  std::size_t pending() const {
    internal::MutexLock l(&mu_);
    return tasks_.size();
  }
  // scheduled: schedule() calls accepted so far.
  std::size_t scheduled() const {
    internal::MutexLock l(&mu_);
    return scheduled_;
  }

  // close: refuse every later schedule() (a scheduler shutting down).
  void close() {
    internal::MutexLock l(&mu_);
    closed_ = true;
  }

 private:
  mutable internal::Mutex mu_;
  std::map<std::pair<TimePoint, std::uint64_t>, std::function<void()>> tasks_ ABSL_GUARDED_BY(mu_);
  std::uint64_t seq_ ABSL_GUARDED_BY(mu_) = 0;
  std::size_t scheduled_ ABSL_GUARDED_BY(mu_) = 0;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace larder::testing

#endif  // LARDER_TESTS_TESTING_MANUAL_SCHEDULER_H_
