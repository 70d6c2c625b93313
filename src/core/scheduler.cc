// SPDX-License-Identifier: Apache-2.0
//
// TimerScheduler and default_scheduler (scheduler.h has the design): no
// template parameter, so compiled once here.
#include "larder/scheduler.h"

#include <algorithm>
#include <stdexcept>

namespace larder {

TimerScheduler::TimerScheduler(const TimerSchedulerOptions& options)
    : clock_(clock_or_default(options.clock)), max_sleep_(options.max_sleep) {
  if (max_sleep_ <= std::chrono::milliseconds::zero()) {
    throw std::invalid_argument("TimerSchedulerOptions::max_sleep must be > 0");
  }
  thread_ = std::thread([this] { work(); });
}

TimerScheduler::~TimerScheduler() {
  {
    internal::MutexLock l(&mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

bool TimerScheduler::schedule(TimePoint at, std::function<void()> task) {
  bool earliest = false;
  {
    internal::MutexLock l(&mu_);
    if (stopping_) return false;
    heap_.push_back({at, next_seq_++, std::move(task)});
    std::push_heap(heap_.begin(), heap_.end(), Later{});
    earliest = heap_.front().seq == next_seq_ - 1;
    if (earliest) ++wakeups_;
  }
  if (earliest) cv_.notify_one();
  return true;
}

std::size_t TimerScheduler::pending() const {
  internal::MutexLock l(&mu_);
  return heap_.size();
}

void TimerScheduler::work() {
  for (;;) {
    std::function<void()> task;
    {
      internal::MutexLock l(&mu_);
      for (;;) {
        if (stopping_) return;
        const std::uint64_t seen = wakeups_;
        auto woken = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          return stopping_ || wakeups_ != seen;
        };
        if (heap_.empty()) {
          cv_.wait(l, woken);
          continue;
        }
        const TimePoint now = clock_->now();
        if (heap_.front().at > now) {
          cv_.wait_for(l, std::min<std::chrono::nanoseconds>(heap_.front().at - now, max_sleep_),
                       woken);
          continue;
        }
        std::pop_heap(heap_.begin(), heap_.end(), Later{});
        task = std::move(heap_.back().task);
        heap_.pop_back();
        break;
      }
    }
    try {  // outside the lock: a task may schedule another
      task();
    } catch (...) {
      // A task's exception must not stop the scheduler (Scheduler contract).
    }
  }
}

std::shared_ptr<Scheduler> default_scheduler() {
  static const std::shared_ptr<Scheduler> scheduler = std::make_shared<TimerScheduler>();
  return scheduler;
}

}  // namespace larder
