// SPDX-License-Identifier: Apache-2.0
//
// larder::internal::Mutex: a std::mutex carrying abseil's thread-safety
// annotations.
//
// Why not absl::Mutex, which CONVENTIONS.md prefers? larder is tested under
// ThreadSanitizer against the abseil that Debian ships, which is not built
// with -fsanitize=thread. absl::Mutex synchronises inside that uninstrumented
// library, so TSan cannot see its happens-before edges and reports every
// access it guards as a race (measured: a four-thread counter under
// absl::MutexLock is flagged). std::mutex goes through pthread, which TSan
// intercepts, so races TSan reports on it are real. The annotations keep the
// clang -Wthread-safety checks that absl::Mutex would give.
//
// Thread-safety: it is a mutex.
#ifndef LARDER_INTERNAL_MUTEX_H_
#define LARDER_INTERNAL_MUTEX_H_

#include <chrono>
#include <condition_variable>
#include <mutex>

#include "absl/base/thread_annotations.h"

namespace larder::internal {

class ABSL_LOCKABLE Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { mu_.lock(); }
  void unlock() ABSL_UNLOCK_FUNCTION() { mu_.unlock(); }
  bool try_lock() ABSL_EXCLUSIVE_TRYLOCK_FUNCTION(true) { return mu_.try_lock(); }

  std::mutex& native() { return mu_; }

 private:
  std::mutex mu_;
};

// MutexLock: scoped lock over Mutex, like absl::MutexLock.
class ABSL_SCOPED_LOCKABLE MutexLock {
 public:
  explicit MutexLock(Mutex* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : lock_(mu->native()) {}
  ~MutexLock() ABSL_UNLOCK_FUNCTION() = default;
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

  // The std::unique_lock, for CondVar waits.
  std::unique_lock<std::mutex>& native() { return lock_; }

  // unlocked: runs f with the mutex released, then takes it again (also
  // when f throws). For calling out of a critical section in a loop.
  template <class F>
  void unlocked(F&& f) {
    lock_.unlock();
    struct Relock {
      std::unique_lock<std::mutex>& l;
      ~Relock() { l.lock(); }
    } relock{lock_};
    f();
  }

 private:
  std::unique_lock<std::mutex> lock_;
};

// CondVar: a condition variable to wait on with a MutexLock held.
class CondVar {
 public:
  template <class Pred>
  void wait(MutexLock& lock, Pred pred) {
    cv_.wait(lock.native(), pred);
  }
  // wait_until: false when the deadline passed with pred still false.
  template <class TimePointT, class Pred>
  bool wait_until(MutexLock& lock, const TimePointT& deadline, Pred pred) {
    return cv_.wait_until(lock.native(), deadline, pred);
  }
  template <class Rep, class Period, class Pred>
  bool wait_for(MutexLock& lock, std::chrono::duration<Rep, Period> d, Pred pred) {
    return cv_.wait_for(lock.native(), d, pred);
  }
  void notify_one() { cv_.notify_one(); }
  void notify_all() { cv_.notify_all(); }

 private:
  std::condition_variable cv_;
};

}  // namespace larder::internal

#endif  // LARDER_INTERNAL_MUTEX_H_
