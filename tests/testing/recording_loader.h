// SPDX-License-Identifier: Apache-2.0
//
// RecordingLoader<K, V> and RecordingBatchLoader<K, V>: loaders that count and
// record their calls and answer through a replaceable function (which may
// return an error or throw). Copies share one state, as Cache copies loaders
// for background refreshes.
//
//   testing::RecordingLoader<std::string, int> loader([](const std::string& k) {
//     return static_cast<int>(k.size());
//   });
//   cache.get_or_load("abc", loader);   // loader.calls() == 1
#ifndef LARDER_TESTS_TESTING_RECORDING_LOADER_H_
#define LARDER_TESTS_TESTING_RECORDING_LOADER_H_

#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "larder/internal/mutex.h"

namespace larder::testing {

template <class K, class V>
class RecordingLoader {
 public:
  using Answer = std::function<absl::StatusOr<V>(const K&)>;

  explicit RecordingLoader(Answer answer) : s_(std::make_shared<State>()) {
    s_->answer = std::move(answer);
  }

  absl::StatusOr<V> operator()(const K& key) const {
    Answer answer;
    {
      internal::MutexLock l(&s_->mu);
      s_->keys.push_back(key);
      answer = s_->answer;
    }
    return answer(key);
  }

  void set_answer(Answer answer) const {
    internal::MutexLock l(&s_->mu);
    s_->answer = std::move(answer);
  }
  int calls() const {
    internal::MutexLock l(&s_->mu);
    return static_cast<int>(s_->keys.size());
  }
  std::vector<K> keys() const {
    internal::MutexLock l(&s_->mu);
    return s_->keys;
  }

 private:
  struct State {
    internal::Mutex mu;
    std::vector<K> keys;
    Answer answer;
  };
  std::shared_ptr<State> s_;
};

template <class K, class V>
class RecordingBatchLoader {
 public:
  using Map = absl::flat_hash_map<K, V>;
  using Answer = std::function<absl::StatusOr<Map>(std::span<const K>)>;

  explicit RecordingBatchLoader(Answer answer) : s_(std::make_shared<State>()) {
    s_->answer = std::move(answer);
  }

  absl::StatusOr<Map> operator()(std::span<const K> keys) const {
    Answer answer;
    {
      internal::MutexLock l(&s_->mu);
      s_->batches.emplace_back(keys.begin(), keys.end());
      answer = s_->answer;
    }
    return answer(keys);
  }

  void set_answer(Answer answer) const {
    internal::MutexLock l(&s_->mu);
    s_->answer = std::move(answer);
  }
  int calls() const {
    internal::MutexLock l(&s_->mu);
    return static_cast<int>(s_->batches.size());
  }
  std::vector<std::vector<K>> batches() const {
    internal::MutexLock l(&s_->mu);
    return s_->batches;
  }

 private:
  struct State {
    internal::Mutex mu;
    std::vector<std::vector<K>> batches;
    Answer answer;
  };
  std::shared_ptr<State> s_;
};

}  // namespace larder::testing

#endif  // LARDER_TESTS_TESTING_RECORDING_LOADER_H_
