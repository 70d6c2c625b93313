// SPDX-License-Identifier: Apache-2.0
//
// BlockingLoader<K, V>: a Loader that parks every call at a gate until the
// test opens it, so a test can hold a load "in flight" and act meanwhile
// (start more readers, invalidate, advance time). Copies share one state, as
// Cache copies loaders for background refreshes.
//
//   testing::BlockingLoader<std::string, int> loader([](const std::string&) { return 7; });
//   std::thread t([&] { cache.get_or_load("k", loader); });
//   loader.wait_entered(1);   // the load is now running and parked
//   ...
//   loader.open();            // it (and every later call) returns
#ifndef LARDER_TESTS_TESTING_BLOCKING_LOADER_H_
#define LARDER_TESTS_TESTING_BLOCKING_LOADER_H_

#include <functional>
#include <memory>

#include "absl/status/statusor.h"
#include "larder/internal/mutex.h"

namespace larder::testing {

template <class K, class V>
class BlockingLoader {
 public:
  using Answer = std::function<absl::StatusOr<V>(const K&)>;

  explicit BlockingLoader(Answer answer) : s_(std::make_shared<State>()) {
    s_->answer = std::move(answer);
  }

  absl::StatusOr<V> operator()(const K& key) const {
    Answer answer;
    {
      internal::MutexLock l(&s_->mu);
      ++s_->entered;
      s_->cv.notify_all();
      s_->cv.wait(l, [&] { return s_->open; });
      answer = s_->answer;
    }
    return answer(key);
  }

  // wait_entered: blocks until at least n calls have reached the gate.
  void wait_entered(int n) const {
    internal::MutexLock l(&s_->mu);
    s_->cv.wait(l, [&] { return s_->entered >= n; });
  }
  // open: lets every parked and future call through.
  void open() const {
    internal::MutexLock l(&s_->mu);
    s_->open = true;
    s_->cv.notify_all();
  }
  // close: parks future calls again.
  void close() const {
    internal::MutexLock l(&s_->mu);
    s_->open = false;
  }
  // set_answer: what calls return from now on.
  void set_answer(Answer answer) const {
    internal::MutexLock l(&s_->mu);
    s_->answer = std::move(answer);
  }
  int calls() const {
    internal::MutexLock l(&s_->mu);
    return s_->entered;
  }

 private:
  struct State {
    internal::Mutex mu;
    internal::CondVar cv;
    int entered = 0;
    bool open = false;
    Answer answer;
  };
  std::shared_ptr<State> s_;
};

}  // namespace larder::testing

#endif  // LARDER_TESTS_TESTING_BLOCKING_LOADER_H_
