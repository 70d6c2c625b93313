// SPDX-License-Identifier: Apache-2.0
//
// TaskGate: how a cache runs background work on an Executor without outliving
// it.
//
// A task on the executor may start after the Cache is gone. So:
//   * the task holds a shared_ptr to the owner (TaskOwner, the base of
//     CacheCore), so the memory it touches stays valid;
//   * the gate counts the tasks running (enter/leave), and close() (from
//     ~Cache) stops new ones from doing anything and waits for the running
//     ones. A task that starts after close() runs its `cancel` step instead
//     (releasing whatever it promised to finish, e.g. a flight).
// submit() is the one place that spells this out:
//
//   try_execute ──refused──> false (the caller does the work itself or drops it)
//        │
//        └─ on a thread: enter? ──yes──> run(); leave()
//                           └────no───> cancel()
//
// Thread-safety: every method may be called concurrently. enter/leave/close
// take one mutex; submit() adds one executor hand-off.
#ifndef LARDER_INTERNAL_TASK_GATE_H_
#define LARDER_INTERNAL_TASK_GATE_H_

#include <memory>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "larder/executor.h"
#include "larder/internal/mutex.h"

namespace larder::internal {

// TaskOwner: the base of an object that background tasks keep alive. Created
// by std::make_shared (shared_from_this must work).
class TaskOwner : public std::enable_shared_from_this<TaskOwner> {
 protected:
  TaskOwner() = default;
  ~TaskOwner() = default;
};

class TaskGate {
 public:
  // owner: kept alive by every submitted task; executor: never null and
  // outlives every call of submit().
  TaskGate(TaskOwner* owner, Executor* executor) : owner_(owner), executor_(executor) {}
  TaskGate(const TaskGate&) = delete;
  TaskGate& operator=(const TaskGate&) = delete;

  // enter: false once closed; otherwise counts a running task (leave() it).
  bool enter() ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock l(&mu_);
    if (closed_) return false;
    ++running_;
    return true;
  }
  void leave() ABSL_LOCKS_EXCLUDED(mu_) {
    {
      MutexLock l(&mu_);
      --running_;
    }
    cv_.notify_all();
  }

  // close: tasks that start from now on run only their cancel step; returns
  // once the running ones have left.
  void close() ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock l(&mu_);
    closed_ = true;
    cv_.wait(l, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return running_ == 0; });
  }

  // submit: queues run() (entered) or, once closed, cancel(); false when the
  // executor refused the task (neither will run).
  template <class Run, class Cancel>
  bool submit(Run run, Cancel cancel) {
    return executor_->try_execute([self = owner_->shared_from_this(), gate = this,
                                   run = std::move(run), cancel = std::move(cancel)]() mutable {
      if (!gate->enter()) {
        cancel();
        return;
      }
      run();
      gate->leave();
    });
  }

  // owner: for a weak reference to the owner (timers that must not keep it).
  std::weak_ptr<TaskOwner> weak_owner() const { return owner_->weak_from_this(); }

 private:
  TaskOwner* const owner_;
  Executor* const executor_;
  Mutex mu_;
  CondVar cv_;
  int running_ ABSL_GUARDED_BY(mu_) = 0;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace larder::internal

#endif  // LARDER_INTERNAL_TASK_GATE_H_
