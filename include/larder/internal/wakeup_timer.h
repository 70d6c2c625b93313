// SPDX-License-Identifier: Apache-2.0
//
// WakeupTimer: one process-wide thread that calls back, after a delay, the
// objects that asked it to. For work that must happen even when no caller
// comes along: re-applying invalidations after a store outage (Cache's
// auto-recovery, TieredStore's unsent publishes).
//
// Design: a ticket per owner (Ticket), armed with a delay; the thread sleeps
// until the earliest armed deadline and runs that ticket's callback outside
// its lock. A ticket is armed at most once at a time (arming an armed ticket
// keeps the earlier deadline). Callbacks must be short and must not block:
// they queue real work elsewhere (an Executor) or do one quick step.
// Destroying a ticket disarms it and waits for its callback if it is running
// on the timer thread (unless the destructor runs inside that very callback).
//
// Why not an Executor: Executor has no delayed tasks, and a task that sleeps
// would hold one of the few shared pool threads for the whole outage. Why one
// thread for the process and not one per cache: a process with a hundred
// caches should not have a hundred idle threads. The thread starts on first
// use and is never joined (the singleton is intentionally leaked so that
// tickets destroyed during static destruction still find it).
//
// Delays are real time (steady_clock): the callback then asks its owner's
// Clock whether the work is due, so tests on a ManualClock stay in control.
//
// Thread-safety: every method may be called concurrently.
#ifndef LARDER_INTERNAL_WAKEUP_TIMER_H_
#define LARDER_INTERNAL_WAKEUP_TIMER_H_

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "larder/internal/mutex.h"

namespace larder::internal {

class WakeupTimer {
 public:
  using Clock = std::chrono::steady_clock;

  class Ticket {
   public:
    ~Ticket() { timer_->cancel(this); }
    Ticket(const Ticket&) = delete;
    Ticket& operator=(const Ticket&) = delete;

    // arm: run the callback once, `after` from now (or at the earlier
    // deadline if already armed).
    void arm(Clock::duration after) { timer_->arm(this, Clock::now() + after); }

   private:
    friend class WakeupTimer;
    Ticket(WakeupTimer* timer, std::function<void()> fn) : timer_(timer), fn_(std::move(fn)) {}
    WakeupTimer* timer_;
    std::function<void()> fn_;
    bool armed_ = false;               // guarded by timer_->mu_
    Clock::time_point deadline_{};     // guarded by timer_->mu_
  };

  // instance: the process's timer (its thread starts on first use).
  static WakeupTimer& instance() {
    static WakeupTimer* t = new WakeupTimer();  // leaked on purpose: see the file comment
    return *t;
  }

  // ticket: a disarmed ticket that runs fn on the timer thread when it fires.
  std::unique_ptr<Ticket> ticket(std::function<void()> fn) {
    return std::unique_ptr<Ticket>(new Ticket(this, std::move(fn)));
  }

 private:
  WakeupTimer() {
    std::thread([this] { run(); }).detach();
  }

  void arm(Ticket* t, Clock::time_point at) {
    {
      MutexLock l(&mu_);
      if (t->armed_) {
        if (t->deadline_ <= at) return;
        queue_.erase({t->deadline_, t});
      }
      t->armed_ = true;
      t->deadline_ = at;
      queue_.emplace(std::make_pair(at, t), 0);
    }
    cv_.notify_one();
  }

  void cancel(Ticket* t) {
    MutexLock l(&mu_);
    if (t->armed_) {
      queue_.erase({t->deadline_, t});
      t->armed_ = false;
    }
    if (std::this_thread::get_id() == thread_id_ && running_ == t) return;  // from its own callback
    cv_.wait(l, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return running_ != t; });
  }

  void run() {
    MutexLock l(&mu_);
    thread_id_ = std::this_thread::get_id();
    for (;;) {
      if (queue_.empty()) {
        cv_.wait(l, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !queue_.empty(); });
        continue;
      }
      const Clock::time_point next = queue_.begin()->first.first;
      if (Clock::now() < next) {
        cv_.wait_until(l, next, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          return queue_.empty() || queue_.begin()->first.first < next;
        });
        continue;
      }
      Ticket* t = queue_.begin()->first.second;
      queue_.erase(queue_.begin());
      t->armed_ = false;
      running_ = t;
      // A copy: the ticket may be destroyed by its own callback.
      std::function<void()> fn = t->fn_;
      l.unlocked([&] {
        try {
          fn();
        } catch (...) {
          // A callback must not take the timer thread down.
        }
      });
      running_ = nullptr;
      cv_.notify_all();
    }
  }

  Mutex mu_;
  CondVar cv_;
  // (deadline, ticket) -> unused; ordered by deadline.
  std::map<std::pair<Clock::time_point, Ticket*>, int> queue_ ABSL_GUARDED_BY(mu_);
  Ticket* running_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::thread::id thread_id_ ABSL_GUARDED_BY(mu_);
};

}  // namespace larder::internal

#endif  // LARDER_INTERNAL_WAKEUP_TIMER_H_
