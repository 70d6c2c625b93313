// SPDX-License-Identifier: Apache-2.0
//
// FakeDb<K, V>: a system of record in memory for Cache tests. It holds rows,
// hands out a Writer (write-through and write-back) and a loader over them,
// and records what happened:
// - every Writer call, and the per-key log of applied writes and erases in
//   the order they were applied (for "never out of order" checks);
// - counts of calls and of keys written, erased and loaded;
// - failures on demand: the next N Writer calls, or every call until cleared.
// All of it is thread-safe; copies of the Writer and loader refer to this
// object, which must outlive the Cache that uses them.
//
//   testing::FakeDb<std::string, std::string> db;
//   o.writer = db.writer();
//   o.loader = db.loader();
//   db.fail_next(1);                 // the next Writer call fails
//   EXPECT_EQ(db.row("k"), "v1");    // std::optional<V>
#ifndef LARDER_TESTS_TESTING_FAKE_DB_H_
#define LARDER_TESTS_TESTING_FAKE_DB_H_

#include <map>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "larder/internal/mutex.h"
#include "larder/writer.h"

namespace larder::testing {

template <class K, class V>
class FakeDb {
 public:
  // One applied change: a write (value) or an erase (nullopt).
  struct Op {
    K key;
    std::optional<V> value;
    friend bool operator==(const Op&, const Op&) = default;
  };

  // writer: write and erase (erase left empty when with_erase is false).
  Writer<K, V> writer(bool with_erase = true) {
    Writer<K, V> w;
    w.write = [this](std::span<const std::pair<K, V>> batch) { return write(batch); };
    if (with_erase) w.erase = [this](std::span<const K> keys) { return erase(keys); };
    return w;
  }
  // loader: the row, or kNotFound.
  auto loader() {
    return [this](const K& key) { return load(key); };
  }

  absl::Status write(std::span<const std::pair<K, V>> batch) {
    internal::MutexLock l(&mu_);
    ++write_calls_;
    if (absl::Status s = take_failure(); !s.ok()) return s;
    for (const auto& [k, v] : batch) {
      rows_[k] = v;
      log_.push_back({k, v});
    }
    keys_written_ += static_cast<int>(batch.size());
    return absl::OkStatus();
  }
  absl::Status erase(std::span<const K> keys) {
    internal::MutexLock l(&mu_);
    ++erase_calls_;
    if (absl::Status s = take_failure(); !s.ok()) return s;
    for (const auto& k : keys) {
      rows_.erase(k);
      log_.push_back({k, std::nullopt});
    }
    keys_erased_ += static_cast<int>(keys.size());
    return absl::OkStatus();
  }
  absl::StatusOr<V> load(const K& key) {
    internal::MutexLock l(&mu_);
    ++loads_;
    auto it = rows_.find(key);
    if (it == rows_.end()) return absl::NotFoundError("no row");
    return it->second;
  }

  // set: a row changed behind the cache's back (not logged, not counted).
  void set(const K& key, V value) {
    internal::MutexLock l(&mu_);
    rows_[key] = std::move(value);
  }
  std::optional<V> row(const K& key) const {
    internal::MutexLock l(&mu_);
    auto it = rows_.find(key);
    if (it == rows_.end()) return std::nullopt;
    return it->second;
  }
  std::map<K, V> rows() const {
    internal::MutexLock l(&mu_);
    return rows_;
  }
  std::vector<Op> log() const {
    internal::MutexLock l(&mu_);
    return log_;
  }

  // fail_next: the next n Writer calls return `status`.
  void fail_next(int n, absl::Status status = absl::UnavailableError("db down")) {
    internal::MutexLock l(&mu_);
    fail_next_ = n;
    fail_with_ = std::move(status);
  }
  // fail_all: every Writer call returns `status` until fail_all(OkStatus()).
  void fail_all(absl::Status status) {
    internal::MutexLock l(&mu_);
    fail_all_ = std::move(status);
  }

  int write_calls() const {
    internal::MutexLock l(&mu_);
    return write_calls_;
  }
  int erase_calls() const {
    internal::MutexLock l(&mu_);
    return erase_calls_;
  }
  int keys_written() const {
    internal::MutexLock l(&mu_);
    return keys_written_;
  }
  int keys_erased() const {
    internal::MutexLock l(&mu_);
    return keys_erased_;
  }
  int loads() const {
    internal::MutexLock l(&mu_);
    return loads_;
  }

 private:
  absl::Status take_failure() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!fail_all_.ok()) return fail_all_;
    if (fail_next_ > 0) {
      --fail_next_;
      return fail_with_;
    }
    return absl::OkStatus();
  }

  mutable internal::Mutex mu_;
  std::map<K, V> rows_ ABSL_GUARDED_BY(mu_);
  std::vector<Op> log_ ABSL_GUARDED_BY(mu_);
  int write_calls_ ABSL_GUARDED_BY(mu_) = 0;
  int erase_calls_ ABSL_GUARDED_BY(mu_) = 0;
  int keys_written_ ABSL_GUARDED_BY(mu_) = 0;
  int keys_erased_ ABSL_GUARDED_BY(mu_) = 0;
  int loads_ ABSL_GUARDED_BY(mu_) = 0;
  int fail_next_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status fail_with_ ABSL_GUARDED_BY(mu_);
  absl::Status fail_all_ ABSL_GUARDED_BY(mu_);
};

}  // namespace larder::testing

#endif  // LARDER_TESTS_TESTING_FAKE_DB_H_
