// SPDX-License-Identifier: Apache-2.0
//
// LoadGuard<K>: a cross-process guard around a load, so that when many
// processes miss the same key at once, one of them asks the system of record
// and the others wait for its value to appear in the shared store.
//
// Cache<K, V> uses it when CacheOptions::load_guard is set (cache.h): the
// same key can be guarded by a Redis lock across processes. The in-process
// single-flight runs first, so one thread per process reaches the guard:
//
//   try_acquire(k) -> lease      : this process loads, stores, then drops the lease
//   try_acquire(k) -> nullptr    : another process loads; poll the store every
//                                  poll_interval() until the value appears, or
//                                  is_held(k) turns false (try again), or wait()
//                                  passes (load anyway: the guard bounds waiting,
//                                  it never blocks a load forever)
//   try_acquire(k) -> error      : the guard's backend is down; load without it
//
// RedisLoadGuard (larder/redis.h) implements it with RedisLock (SET NX PX with
// a random token; release is an atomic compare-and-delete).
//
// Thread-safety: every method may be called concurrently.
#ifndef LARDER_LOAD_GUARD_H_
#define LARDER_LOAD_GUARD_H_

#include <chrono>
#include <memory>

#include "absl/status/statusor.h"

namespace larder {

// LoadLease: held while this process loads a key; releases on destruction.
class LoadLease {
 public:
  virtual ~LoadLease() = default;
};

template <class K>
class LoadGuard {
 public:
  virtual ~LoadGuard() = default;

  // try_acquire: a lease when this process won the key, nullptr when another
  // process holds it, or an error when the guard could not tell (then the
  // cache loads without the guard).
  virtual absl::StatusOr<std::unique_ptr<LoadLease>> try_acquire(const K& key) = 0;

  // is_held: whether some process holds the key's guard now. An error counts
  // as not held.
  virtual absl::StatusOr<bool> is_held(const K& key) = 0;

  // wait: how long a loser waits for the winner's value before loading itself.
  virtual std::chrono::milliseconds wait() const = 0;

  // poll_interval: how often a loser looks at the store while it waits.
  virtual std::chrono::milliseconds poll_interval() const = 0;
};

}  // namespace larder

#endif  // LARDER_LOAD_GUARD_H_
