// SPDX-License-Identifier: Apache-2.0
//
// Scheduler: runs tasks at instants of a Clock. LocalStore uses one
// (LocalStoreOptions::maintenance) to reclaim expired entries when nothing
// else calls it: it asks to be run when its timer wheel's next deadline is
// due, and asks again for the next one. Cache and TieredStore use one
// (CacheOptions::scheduler, TieredStoreOptions::scheduler; by default
// default_scheduler() when their clock is the system clock) to retry, with no
// call coming along, the invalidations and bus messages a store outage held
// back (auto-recovery).
//
// How it differs from an Executor (executor.h): an Executor runs a task as
// soon as it can; a Scheduler runs it at an instant. The instant is read from
// a Clock, so a test drives a scheduler with ManualClock and runs what is due
// itself (tests/testing/manual_scheduler.h), without sleeping; a program uses
// TimerScheduler, one thread that sleeps until the earliest instant.
//
// Design essay.
//
//   The one operation is schedule(at, task): run task once, at or soon after
//   `at` by the scheduler's clock, on a thread of the scheduler's (never the
//   caller's). There is no cancellation: the scheduler may outlive what it
//   runs for, so a task must find out whether its target still exists.
//   internal::SchedulerTether is that check: the target owns a tether and
//   closes it in its destructor; a task runs the target's work through the
//   tether, which skips it once closed, and close() waits for a run in
//   progress to finish. A task left pending after its target died runs as a
//   no-op at its instant (it holds only the tether: a few bytes).
//
//   TimerScheduler keeps its tasks in a min-heap by instant (ties in the
//   order they were scheduled) and sleeps on a condition variable until the
//   earliest one is due by its clock, or a new earlier task arrives. It
//   sleeps at most max_sleep at a time and re-reads the clock, so a wall
//   clock that jumps is noticed within max_sleep. Tasks run on the
//   scheduler's thread without its lock held (a task may schedule another);
//   they should be short: a task that has much to do should hand it to an
//   Executor. The destructor stops the thread (waiting for a running task)
//   and destroys the pending tasks without running them.
//
//   The clock must be the one the instants come from: a LocalStore with a
//   ManualClock and a TimerScheduler over the system clock would wait for the
//   wrong time. (The alternative, a scheduler that waits for durations,
//   cannot be driven by a ManualClock at all.)
//
// Thread-safety: schedule() may be called concurrently from any thread,
// including from inside a running task.
//
// Example:
//
//   auto scheduler = std::make_shared<larder::TimerScheduler>();
//   larder::LocalStore<std::string, std::string> store(
//       {.max_entries = 100'000, .maintenance = scheduler});
//   // expired entries are now reclaimed within ~1 s of their stale_until,
//   // even when nothing calls the store
//
// TimerScheduler and default_scheduler() are compiled in larder::core
// (src/core/scheduler.cc).
#ifndef LARDER_SCHEDULER_H_
#define LARDER_SCHEDULER_H_

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "larder/clock.h"
#include "larder/internal/mutex.h"

namespace larder {

// Scheduler: runs tasks at instants of its clock.
class Scheduler {
 public:
  virtual ~Scheduler() = default;

  // schedule: runs task once, at or soon after `at` (by the scheduler's
  // clock; an instant already past runs as soon as possible), on one of the
  // scheduler's threads, never on the calling thread; returns true. Returns
  // false (task dropped, never run) when the scheduler is shutting down.
  // Never blocks on running tasks. Tasks should not throw; an escaping
  // exception is caught and dropped by larder's schedulers.
  virtual bool schedule(TimePoint at, std::function<void()> task) = 0;
};

struct TimerSchedulerOptions {
  std::shared_ptr<Clock> clock = nullptr;  // whose instants schedule() takes; null: system_clock()
  // The longest the thread sleeps before it re-reads the clock (so a clock
  // that jumps is noticed). Must be > 0.
  std::chrono::milliseconds max_sleep = std::chrono::seconds(1);
};

// TimerScheduler: one thread running tasks at their instants. Throws
// std::invalid_argument from the constructor when max_sleep <= 0.
class TimerScheduler final : public Scheduler {
 public:
  explicit TimerScheduler(const TimerSchedulerOptions& options = {});

  // Stops the thread (after the task it is running, if any); pending tasks
  // are destroyed without running.
  ~TimerScheduler() override;

  TimerScheduler(const TimerScheduler&) = delete;
  TimerScheduler& operator=(const TimerScheduler&) = delete;

  bool schedule(TimePoint at, std::function<void()> task) override;

  // pending: tasks waiting for their instant (for tests and monitoring).
  std::size_t pending() const;

 private:
  struct Item {
    TimePoint at;
    std::uint64_t seq;
    std::function<void()> task;
  };
  // Later: the heap's order (std::push_heap keeps the greatest in front, so
  // "greater" here means "runs earlier").
  struct Later {
    bool operator()(const Item& a, const Item& b) const {
      return a.at != b.at ? a.at > b.at : a.seq > b.seq;
    }
  };

  void work();

  const std::shared_ptr<Clock> clock_;
  const std::chrono::milliseconds max_sleep_;
  mutable internal::Mutex mu_;
  internal::CondVar cv_;
  std::vector<Item> heap_ ABSL_GUARDED_BY(mu_);
  std::uint64_t next_seq_ ABSL_GUARDED_BY(mu_) = 0;
  // Bumped when a task becomes the earliest (the thread re-plans its sleep).
  std::uint64_t wakeups_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

// default_scheduler: the process-wide TimerScheduler on the system clock,
// used for time-driven background work (auto-recovery retries in Cache and
// TieredStore) by objects whose options name no scheduler. Created on first
// use (one thread); never null.
std::shared_ptr<Scheduler> default_scheduler();

namespace internal {

// SchedulerTether: how a scheduled task reaches an object that may have
// been destroyed since it was scheduled (see the essay). The object holds a
// shared_ptr to its tether and calls close() first thing in its destructor;
// tasks hold another and do their work through run().
class SchedulerTether {
 public:
  // run: calls f() unless the tether was closed; close() waits for it.
  // Several runs may be in progress at once.
  template <class F>
  void run(F&& f) {
    {
      MutexLock l(&mu_);
      if (closed_) return;
      ++running_;
    }
    struct Done {
      SchedulerTether* t;
      ~Done() {
        // Notified under the lock: close() may return, and the tether die,
        // as soon as the lock is released.
        MutexLock l(&t->mu_);
        if (--t->running_ == 0 && t->closed_) t->cv_.notify_all();
      }
    } done{this};
    f();
  }

  // close: no run starts after it; waits for those in progress. Must not be
  // called from inside run() (it would wait for itself).
  void close() {
    MutexLock l(&mu_);
    closed_ = true;
    cv_.wait(l, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return running_ == 0; });
  }

 private:
  Mutex mu_;
  CondVar cv_;
  int running_ ABSL_GUARDED_BY(mu_) = 0;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace internal
}  // namespace larder

#endif  // LARDER_SCHEDULER_H_
