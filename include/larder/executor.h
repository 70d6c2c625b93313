// SPDX-License-Identifier: Apache-2.0
//
// Executor: where larder runs background work (stale-while-revalidate and
// refresh-ahead refreshes, loads that outlive a caller's load_timeout).
//
// The one operation is try_execute(), which never blocks: it queues the task
// or says no. That is the difference from the obvious "submit and wait for a
// slot" pool: a cache calls it from a reader's thread, and a reader must never
// wait because background work is behind. A refresh that cannot be queued is
// simply skipped (Cache counts it in CacheStats::refreshes_dropped); the next
// stale read will try again.
//
// ThreadPoolExecutor is a small fixed pool with a bounded FIFO queue.
// default_executor() is one such pool shared by every cache that was not
// handed its own, so a process with a hundred caches has two refresh threads,
// not two hundred. Users with their own thread pool adapt it by implementing
// Executor (one method).
//
// Thread-safety: try_execute may be called concurrently from any thread,
// including from inside a running task.
//
// Example:
//
//   auto pool = std::make_shared<larder::ThreadPoolExecutor>(
//       larder::ThreadPoolOptions{.threads = 4, .queue_capacity = 4096});
//   larder::CacheOptions<std::string, User> opts{.executor = pool};
//   bool queued = pool->try_execute([] { /* runs on a pool thread */ });
#ifndef LARDER_EXECUTOR_H_
#define LARDER_EXECUTOR_H_

#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <stdexcept>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "larder/internal/mutex.h"

namespace larder {

// Executor: runs tasks on threads other than the caller's.
class Executor {
 public:
  virtual ~Executor() = default;

  // try_execute: queues task to run later on another thread and returns true,
  // or returns false at once (task dropped, never run) when it cannot be
  // queued now (queue full, executor shutting down). Never blocks on the
  // queue and never runs task on the calling thread. Tasks should not throw;
  // an escaping exception is caught and dropped by larder's executors.
  virtual bool try_execute(std::function<void()> task) = 0;
};

struct ThreadPoolOptions {
  std::size_t threads = 2;            // worker threads; must be >= 1
  std::size_t queue_capacity = 1024;  // tasks waiting (not running); must be >= 1
};

// ThreadPoolExecutor: `threads` workers draining one bounded FIFO queue.
// Destruction stops accepting tasks, runs every task already queued, and joins
// the workers. Throws std::invalid_argument from the constructor when a field
// of ThreadPoolOptions is 0.
class ThreadPoolExecutor final : public Executor {
 public:
  explicit ThreadPoolExecutor(ThreadPoolOptions options = {}) : options_(options) {
    if (options_.threads == 0)
      throw std::invalid_argument("ThreadPoolOptions::threads must be >= 1");
    if (options_.queue_capacity == 0) {
      throw std::invalid_argument("ThreadPoolOptions::queue_capacity must be >= 1");
    }
    workers_.reserve(options_.threads);
    for (std::size_t i = 0; i < options_.threads; ++i) {
      workers_.emplace_back([this] { work(); });
    }
  }

  ~ThreadPoolExecutor() override {
    {
      internal::MutexLock l(&mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    for (std::thread& t : workers_) t.join();
  }

  ThreadPoolExecutor(const ThreadPoolExecutor&) = delete;
  ThreadPoolExecutor& operator=(const ThreadPoolExecutor&) = delete;

  bool try_execute(std::function<void()> task) override {
    {
      internal::MutexLock l(&mu_);
      if (stopping_ || queue_.size() >= options_.queue_capacity) return false;
      queue_.push_back(std::move(task));
    }
    cv_.notify_one();
    return true;
  }

  // queued: tasks waiting to start now (for tests and monitoring).
  std::size_t queued() const {
    internal::MutexLock l(&mu_);
    return queue_.size();
  }

  const ThreadPoolOptions& options() const { return options_; }

 private:
  void work() {
    for (;;) {
      std::function<void()> task;
      {
        internal::MutexLock l(&mu_);
        cv_.wait(l,
                 [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;  // stopping and drained
        task = std::move(queue_.front());
        queue_.pop_front();
      }
      try {
        task();
      } catch (...) {
        // A task's exception must not take the pool down (Executor contract).
      }
    }
  }

  const ThreadPoolOptions options_;
  mutable internal::Mutex mu_;
  internal::CondVar cv_;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> workers_;
};

// default_executor: the process-wide pool used by caches whose options name
// no executor: 2 threads, a queue of 1024. Created on first use; never null.
inline std::shared_ptr<Executor> default_executor() {
  static const std::shared_ptr<Executor> pool =
      std::make_shared<ThreadPoolExecutor>(ThreadPoolOptions{.threads = 2, .queue_capacity = 1024});
  return pool;
}

}  // namespace larder

#endif  // LARDER_EXECUTOR_H_
