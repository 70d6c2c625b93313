// SPDX-License-Identifier: Apache-2.0
//
// RedisLock: a lease on a Redis key, for mutual exclusion across processes;
// RedisLoadGuard<K>: the LoadGuard (larder/load_guard.h) built on it, so that
// when many processes miss one key, one loads and the others wait.
//
// Protocol (the single-instance algorithm of
// https://redis.io/docs/manual/patterns/distributed-locks/):
//   acquire : SET <key_prefix><name> <token> NX PX <ttl>    token: 128 random bits, new per acquire
//   release : EVAL "if GET(key) == token then DEL(key)"      atomic compare-and-delete
//   extend  : EVAL "if GET(key) == token then PEXPIRE(key)"  atomic compare-and-pexpire
// The compare makes release and extend touch only our own lease: once ttl has
// passed and another process took the key, our release is a no-op instead of
// deleting its lock. It is a lease, not a fence: a holder paused longer than
// ttl loses the lock without knowing until it calls extend() or unlock().
// For load de-duplication that is enough (the worst case is a second load).
//
// Cluster and Sentinel: every command touches one key, so it routes to the
// key's master unchanged (mid-migration, SET NX of a missing key is
// ASK-redirected to the importing node, which keeps the exclusion).
// Replication is asynchronous: if a master dies before the lock key reaches
// its replica, the promoted replica has no key and a second process can
// acquire the lock: two holders. A manual CLUSTER FAILOVER is safe;
// automatic failover (a crashed master) and SENTINEL FAILOVER are not. WAIT
// narrows the window; only fencing tokens close it. For RedisLoadGuard the
// cost is a duplicate load.
//
// Thread-safety: a RedisLock object is used by one thread at a time (like a
// std::unique_lock); any number of RedisLock objects, in any processes, may
// contend for one name. RedisLoadGuard is fully thread-safe.
//
// Example:
//
//   larder::RedisLock lock(client, "jobs:rebuild-index", {.ttl = std::chrono::seconds(30)});
//   absl::StatusOr<bool> got = lock.lock();       // waits up to options.wait
//   if (got.ok() && *got) { rebuild(); (void)lock.unlock(); }
#ifndef LARDER_REDIS_LOCK_H_
#define LARDER_REDIS_LOCK_H_

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "larder/codec.h"
#include "larder/load_guard.h"
#include "larder/redis/client.h"

namespace larder {

struct RedisLockOptions {
  std::chrono::milliseconds ttl{5000};   // the lease's PX; > 0
  std::chrono::milliseconds wait{2000};  // lock(): give up after this; 0: one attempt
  // --- added after the first API (append only) ---
  std::chrono::milliseconds retry_interval{10};  // lock(): pause between attempts (jittered +-50%)
};

class RedisLock {
 public:
  // The lock's Redis key is client->options().key_prefix + name. Throws
  // std::invalid_argument when client is null or options.ttl <= 0.
  RedisLock(std::shared_ptr<RedisClient> client, std::string_view name,
            RedisLockOptions options = {});
  // Releases the lock if held (best effort: an error is logged, not thrown).
  ~RedisLock();
  RedisLock(const RedisLock&) = delete;
  RedisLock& operator=(const RedisLock&) = delete;

  // try_lock: one SET NX PX. true: acquired (or already held by this object);
  // false: someone else holds it; an error Status when Redis could not answer
  // (kUnavailable, kDeadlineExceeded). One round trip.
  absl::StatusOr<bool> try_lock();

  // lock: try_lock until it succeeds or options.wait passes (false). Errors
  // end the wait at once.
  absl::StatusOr<bool> lock();

  // unlock: atomic compare-and-delete. OK when released or not held;
  // kAborted when the lease had expired and the key is no longer ours (the
  // work done under it was not exclusive to the end). Either way the object
  // no longer holds the lock.
  absl::Status unlock();

  // extend: atomic compare-and-pexpire to ttl from now. true: still ours;
  // false: lost (expired, maybe taken), and the object no longer holds it.
  absl::StatusOr<bool> extend(std::chrono::milliseconds ttl);
  absl::StatusOr<bool> extend() { return extend(options_.ttl); }

  // held: whether this object believes it holds the lock (it may have
  // expired on the server; extend() finds out).
  bool held() const { return !token_.empty(); }
  const std::string& key() const { return key_; }
  const std::string& token() const { return token_; }

  // is_locked: whether anyone holds the lock `name` now (one EXISTS).
  static absl::StatusOr<bool> is_locked(RedisClient& client, std::string_view name);

 private:
  std::shared_ptr<RedisClient> client_;
  std::string key_;
  RedisLockOptions options_;
  std::string token_;  // empty when not held
};

// RedisLoadGuardOptions: the lock each guarded key takes, and how losers poll.
struct RedisLoadGuardOptions {
  RedisLockOptions lock{};                      // ttl should exceed the slowest load
  std::chrono::milliseconds poll_interval{10};  // losers look at the store this often
  std::string lock_prefix = "lock:";            // lock name = lock_prefix + KeyCodec bytes
};

// RedisLoadGuard: LoadGuard<K> over RedisLock. Lock keys live under the
// client's key_prefix + lock_prefix, so give the guard's client the same
// key_prefix as the store it guards (or share one client) and pick a
// lock_prefix that no cache key's encoding starts with.
template <class K, class KeyCodec = DefaultKeyCodec<K>>
class RedisLoadGuard : public LoadGuard<K> {
 public:
  RedisLoadGuard(std::shared_ptr<RedisClient> client, RedisLoadGuardOptions options = {})
      : client_(std::move(client)), options_(std::move(options)) {
    if (client_ == nullptr) throw std::invalid_argument("RedisLoadGuard: client is null");
  }

  absl::StatusOr<std::unique_ptr<LoadLease>> try_acquire(const K& key) override {
    auto lock = std::make_unique<RedisLock>(client_, name(key), options_.lock);
    absl::StatusOr<bool> got = lock->try_lock();
    if (!got.ok()) return got.status();
    if (!*got) return std::unique_ptr<LoadLease>();
    return std::unique_ptr<LoadLease>(std::make_unique<Lease>(std::move(lock)));
  }

  absl::StatusOr<bool> is_held(const K& key) override {
    return RedisLock::is_locked(*client_, name(key));
  }

  std::chrono::milliseconds wait() const override { return options_.lock.wait; }
  std::chrono::milliseconds poll_interval() const override { return options_.poll_interval; }

 private:
  struct Lease final : LoadLease {
    explicit Lease(std::unique_ptr<RedisLock> l) : lock(std::move(l)) {}
    std::unique_ptr<RedisLock> lock;  // released by ~RedisLock
  };

  std::string name(const K& key) const {
    std::string n = options_.lock_prefix;
    KeyCodec::encode(key, n);
    return n;
  }

  std::shared_ptr<RedisClient> client_;
  RedisLoadGuardOptions options_;
};

}  // namespace larder

#endif  // LARDER_REDIS_LOCK_H_
