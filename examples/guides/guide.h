// SPDX-License-Identifier: Apache-2.0
//
// What the guides' programs (examples/guides/*.cc) share: ensure(), which
// checks a claim a guide makes and ends the program with a message when it
// does not hold (always on, also under NDEBUG); wait_until(), a bounded wait
// for another thread; and StepExecutor, an Executor
// whose background tasks run only when the program says so, so that a
// refresh in the background happens at a known point and the programs never
// wait on a timer. Each program is a ctest test (tests/CMakeLists.txt); the
// docs/guides page shows the lines between its "snippet:NAME" markers, and
// the guide_*_in_sync tests check that they match.
#ifndef LARDER_EXAMPLES_GUIDES_GUIDE_H_
#define LARDER_EXAMPLES_GUIDES_GUIDE_H_

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <functional>
#include <mutex>
#include <source_location>
#include <thread>
#include <utility>

#include "larder/executor.h"

namespace guide {

// ensure: the claim holds, or the program prints where and what, and exits 1.
inline void ensure(bool claim, const char* what,
                   std::source_location where = std::source_location::current()) {
  if (claim) return;
  std::fprintf(stderr, "%s:%u: claim failed: %s\n", where.file_name(),
               static_cast<unsigned>(where.line()), what);
  std::exit(1);
}

// wait_until: waits (up to 10 s of real time) for another thread to make
// done() true; past that, fails like ensure().
template <class Pred>
void wait_until(Pred done, const char* what,
                std::source_location where = std::source_location::current()) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!done()) {
    ensure(std::chrono::steady_clock::now() < deadline, what, where);
    std::this_thread::yield();
  }
}

// StepExecutor: queues tasks; run_all() runs them (and any they queue) on the
// calling thread. Destroy it after the caches that use it.
class StepExecutor final : public larder::Executor {
 public:
  bool try_execute(std::function<void()> task) override {
    std::lock_guard<std::mutex> l(mu_);
    queue_.push_back(std::move(task));
    return true;
  }

  // run_all: runs every queued task; returns how many ran.
  int run_all() {
    int ran = 0;
    for (;;) {
      std::function<void()> task;
      {
        std::lock_guard<std::mutex> l(mu_);
        if (queue_.empty()) return ran;
        task = std::move(queue_.front());
        queue_.pop_front();
      }
      task();
      ++ran;
    }
  }

 private:
  std::mutex mu_;
  std::deque<std::function<void()>> queue_;
};

}  // namespace guide

#endif  // LARDER_EXAMPLES_GUIDES_GUIDE_H_
