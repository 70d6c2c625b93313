// SPDX-License-Identifier: Apache-2.0
//
// larder::internal::Mutex: a std::mutex carrying abseil's thread-safety
// annotations.
//
// Why not absl::Mutex, the usual choice? larder is tested under
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

  // assert_held: tells the thread-safety analysis that the calling thread
  // holds this mutex (checks nothing at run time). For a callback that runs
  // synchronously inside a locked section: the analysis checks a lambda's
  // body on its own, as if called with no lock held.
  void assert_held() const ABSL_ASSERT_EXCLUSIVE_LOCK() {}

 private:
  friend class MutexLock;
  std::mutex& native() { return mu_; }
  std::mutex mu_;
};

// MutexLock: scoped lock over Mutex, like absl::MutexLock.
class ABSL_SCOPED_LOCKABLE MutexLock {
 public:
  explicit MutexLock(Mutex* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : lock_(mu->native()) {}
  ~MutexLock() ABSL_UNLOCK_FUNCTION() = default;
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

  // unlocked: runs f with the mutex released, then takes it again (also
  // when f throws). The one way to step out of a critical section (to call
  // user code, do I/O, or take another lock) and come back: the analysis
  // checks f's body as a function of its own, with no lock held, so f
  // touching a member guarded by this mutex is a compile error under the
  // clang preset, while the code around the call still counts it held.
  template <class F>
  void unlocked(F&& f) {
    // (Not annotated: the lock is held again when this returns.)
    lock_.unlock();
    struct Relock {
      std::unique_lock<std::mutex>& l;
      ~Relock() { l.lock(); }
    } relock{lock_};
    f();
  }

 private:
  friend class CondVar;
  std::unique_lock<std::mutex>& native() { return lock_; }
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
