// SPDX-License-Identifier: Apache-2.0
//
// MapStore: the simplest correct Store (a mutex-guarded hash map), with fault
// injection, for tests of what sits above a store (Cache, TieredStore) and of
// the Store contract itself.
//
// Faults: fail_next(n, status) makes the next n operations (get/put/erase and
// batch forms, each batch counting once) return status; set_down(status)
// makes every operation fail until set_down(OkStatus()). Counters record how
// many calls of each kind arrived, so tests can assert "one batch call".
#ifndef LARDER_TESTS_TESTING_MAP_STORE_H_
#define LARDER_TESTS_TESTING_MAP_STORE_H_

#include <atomic>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "larder/clock.h"
#include "larder/internal/mutex.h"
#include "larder/store.h"

namespace larder::testing {

template <class K, class V>
class MapStore : public Store<K, V> {
 public:
  explicit MapStore(std::shared_ptr<Clock> clock = nullptr)
      : clock_(clock_or_default(std::move(clock))) {}

  absl::StatusOr<std::optional<Entry<V>>> get(const K& key) override {
    gets.fetch_add(1);
    if (absl::Status s = fault(); !s.ok()) return s;
    return lookup(key);
  }
  absl::Status put(const K& key, Entry<V> entry) override {
    puts.fetch_add(1);
    if (absl::Status s = fault(); !s.ok()) return s;
    internal::MutexLock l(&mu_);
    map_.insert_or_assign(key, std::move(entry));
    return absl::OkStatus();
  }
  absl::Status erase(const K& key) override {
    erases.fetch_add(1);
    if (absl::Status s = fault(); !s.ok()) return s;
    internal::MutexLock l(&mu_);
    map_.erase(key);
    return absl::OkStatus();
  }
  absl::StatusOr<std::vector<std::optional<Entry<V>>>> get_many(std::span<const K> keys) override {
    batch_gets.fetch_add(1);
    if (absl::Status s = fault(); !s.ok()) return s;
    std::vector<std::optional<Entry<V>>> out;
    out.reserve(keys.size());
    for (const K& k : keys) out.push_back(lookup(k));
    return out;
  }
  absl::Status clear() override {
    if (absl::Status s = fault(); !s.ok()) return s;
    internal::MutexLock l(&mu_);
    map_.clear();
    return absl::OkStatus();
  }
  std::shared_ptr<Clock> clock() const override { return clock_; }

  StoreCounters counters() const override {
    StoreCounters c;
    c.hits = hits_.load();
    c.misses = misses_.load();
    c.errors = errors_.load();
    internal::MutexLock l(&mu_);
    c.size = map_.size();
    return c;
  }

  // Fault injection.
  void fail_next(int n, absl::Status status) {
    internal::MutexLock l(&mu_);
    fail_count_ = n;
    fail_status_ = std::move(status);
  }
  void set_down(absl::Status status) {
    internal::MutexLock l(&mu_);
    down_ = std::move(status);
  }

  // Raw access for assertions: the entry as stored, ignoring expiry.
  std::optional<Entry<V>> raw(const K& key) const {
    internal::MutexLock l(&mu_);
    auto it = map_.find(key);
    if (it == map_.end()) return std::nullopt;
    return it->second;
  }
  std::size_t size() const {
    internal::MutexLock l(&mu_);
    return map_.size();
  }

  std::atomic<int> gets{0}, puts{0}, erases{0}, batch_gets{0};

 private:
  absl::Status fault() {
    internal::MutexLock l(&mu_);
    if (!down_.ok()) {
      errors_.fetch_add(1);
      return down_;
    }
    if (fail_count_ > 0) {
      --fail_count_;
      errors_.fetch_add(1);
      return fail_status_;
    }
    return absl::OkStatus();
  }
  std::optional<Entry<V>> lookup(const K& key) {
    internal::MutexLock l(&mu_);
    auto it = map_.find(key);
    if (it == map_.end() || it->second.age(clock_->now()) == Age::kExpired) {
      misses_.fetch_add(1);
      return std::nullopt;
    }
    hits_.fetch_add(1);
    return it->second;
  }

  std::shared_ptr<Clock> clock_;
  mutable internal::Mutex mu_;
  absl::flat_hash_map<K, Entry<V>> map_ ABSL_GUARDED_BY(mu_);
  int fail_count_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status fail_status_ ABSL_GUARDED_BY(mu_);
  absl::Status down_ ABSL_GUARDED_BY(mu_);
  std::atomic<std::uint64_t> hits_{0}, misses_{0}, errors_{0};
};

}  // namespace larder::testing

#endif  // LARDER_TESTS_TESTING_MAP_STORE_H_
