// SPDX-License-Identifier: Apache-2.0
//
// PendingInvalidations<K>: keys whose old copy a store (or a bus) could not
// drop, remembered until the drop can be re-applied. FusionCache calls this
// auto-recovery.
//
// The problem. A write reaches the system of record, then the cache must drop
// (or overwrite) its old copy: in Redis, in this process's L1, and in every
// other instance's L1 through the bus. When Redis is down (breaker open, or a
// SIGSTOPped server that applies the write later) that second half fails. The
// write itself is done and must not be reported as failed, but the old value
// stays in Redis (and in other instances' L1) and would be served until its
// ttl once Redis is back. So the owner (Cache, or TieredStore for its bus)
// remembers the key here and re-applies the drop when the store answers
// again, and treats the key as "do not serve from the store" meanwhile.
//
// Shape. A bounded map key -> sequence number, plus a "clear needed" mark:
//
//   add(k, now)   k is suspect; past max_keys (or after a failed clear) the
//                 set degrades to "clear needed": every key is suspect until a
//                 Store::clear() succeeds.
//   suspect(k)    k is in the map, or a clear is needed. O(1) under a mutex;
//                 callers check any() first (one relaxed load), so the hit path
//                 pays nothing while nothing is pending.
//   work(n, now)  a snapshot of what to re-apply (up to n keys, or "clear")
//                 with the mark (sequence number, time) it was taken at.
//   settle(k, m)  a drop or overwrite of k that began at mark m succeeded:
//                 k leaves the map if it was added at or before m (and its
//                 hold, below, is over).
//                 An add that came later (a newer failed write) stays.
//   settle_all(m) a clear that began at m succeeded.
//
// Sequence numbers make settle race-free without holding a lock across the
// store call: the owner takes mark() before the store call and settles with
// it after the call succeeded.
//
// Late writes. A store write that failed may still be applied: a SET that
// timed out sits in a stalled server's socket buffer, or in a slow network,
// and lands after the drop that repaired it (the drop went out on another
// pooled connection), or after a later overwrite. The old copy would then
// live until its ttl. So with a hold (the constructor's `hold`;
// CacheOptions::late_write_window) a key added at time t stays pending until
// a drop or overwrite that STARTED at t + hold or later succeeds: work()
// hands it out once at once (so the store is repaired as soon as it answers)
// and again when the hold is over; a settle inside the hold keeps it. The
// owner keeps not serving it from the store meanwhile. A write that lands
// later than the hold is not covered (the hold is the bound). hold = 0 is the
// plain behaviour above.
//
// Retry pacing: due(now) says whether a re-apply attempt may start (one at a
// time: try_begin/end), failed(now) (a re-apply attempt failed) backs off
// exponentially from kRetryBase (50 ms) to kRetryMax (1 s), succeeded()
// resets it. A new add() does not delay the next attempt. Time is the owner's Clock,
// so tests drive it with ManualClock.
//
// Thread-safety: every method may be called concurrently.
#ifndef LARDER_INTERNAL_PENDING_INVALIDATIONS_H_
#define LARDER_INTERNAL_PENDING_INVALIDATIONS_H_

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "larder/clock.h"
#include "larder/internal/mutex.h"

namespace larder::internal {

template <class K>
class PendingInvalidations {
 public:
  using Seq = std::uint64_t;
  // Mark: when a store call started (sequence number and Clock time).
  struct Mark {
    Seq seq = 0;
    std::int64_t at_ns = 0;
  };
  static constexpr std::chrono::milliseconds kRetryBase{50};
  static constexpr std::chrono::milliseconds kRetryMax{1000};

  // max_keys: most keys remembered one by one; must be > 0. hold: see "Late
  // writes" above (0: none).
  explicit PendingInvalidations(std::size_t max_keys,
                                std::chrono::nanoseconds hold = std::chrono::nanoseconds(0))
      : max_keys_(max_keys), hold_ns_(std::max<std::int64_t>(hold.count(), 0)) {}

  // any: whether anything is pending (relaxed; a hint for the fast path).
  bool any() const noexcept { return any_.load(std::memory_order_relaxed); }

  // mark: what a store call that starts at `now` settles with.
  Mark mark(TimePoint now) const noexcept {
    return Mark{seq_.load(std::memory_order_acquire), to_nanos(now)};
  }

  // add: key's old copy may still be in the store. Returns whether this made
  // something new pending: false when key was pending already (its sequence
  // number moves on) or when a clear is already needed; past max_keys the set
  // degrades to "clear needed".
  bool add(const K& key, TimePoint now) { return add(key, now, /*degrade=*/true); }

  // add_if_room: add() that never degrades to "clear needed": past max_keys
  // (or when a clear is needed already) nothing is added and it returns
  // false. For drops that are only a precaution (recovery.h: a timed-out
  // fill), which must not make the owner clear the whole store.
  bool add_if_room(const K& key, TimePoint now) { return add(key, now, /*degrade=*/false); }

 private:
  bool add(const K& key, TimePoint now, bool degrade) {
    MutexLock l(&mu_);
    if (!degrade && (clear_at_ != 0 || (keys_.size() >= max_keys_ && !keys_.contains(key)))) {
      return false;
    }
    const Seq s = seq_.fetch_add(1, std::memory_order_acq_rel) + 1;
    any_.store(true, std::memory_order_relaxed);
    // Something new to drop: due now unless the store is failing (back-off).
    if (failures_.load(std::memory_order_relaxed) == 0) {
      next_try_ns_.store(0, std::memory_order_relaxed);
    }
    const Held h{s, to_nanos(now) + hold_ns_, false};
    auto it = keys_.find(key);
    if (it != keys_.end()) {
      it->second = h;
      return false;
    }
    if (keys_.size() >= max_keys_) {
      const bool first = clear_at_ == 0;
      clear_at_ = s;
      return first;
    }
    keys_.emplace(key, h);
    return true;
  }

 public:
  // add_clear: every key may be stale (a clear failed, or the set overflowed).
  void add_clear() {
    MutexLock l(&mu_);
    clear_at_ = seq_.fetch_add(1, std::memory_order_acq_rel) + 1;
    any_.store(true, std::memory_order_relaxed);
  }

  // suspect: key must not be served from the store now.
  bool suspect(const K& key) const {
    if (!any()) return false;
    MutexLock l(&mu_);
    return clear_at_ != 0 || keys_.contains(key);
  }

  // clear_needed: only a Store::clear() settles what is pending.
  bool clear_needed() const {
    MutexLock l(&mu_);
    return clear_at_ != 0;
  }

  std::size_t size() const {
    MutexLock l(&mu_);
    return keys_.size();
  }

  struct Work {
    std::vector<K> keys;  // drop these (empty when clear)
    bool clear = false;   // or clear the whole store
    Mark mark;            // settle with this after success
  };

  // work: what to re-apply next at `now`, at most `max` keys: keys not
  // dropped since they were added, and keys whose hold is over. Empty (and
  // not clear) when every pending key waits for its hold to end.
  Work work(std::size_t max, TimePoint now) const {
    Work w;
    MutexLock l(&mu_);
    w.mark = Mark{seq_.load(std::memory_order_acquire), to_nanos(now)};
    if (clear_at_ != 0) {
      w.clear = true;
      return w;
    }
    w.keys.reserve(std::min(max, keys_.size()));
    for (const auto& kv : keys_) {
      if (w.keys.size() >= max) break;
      if (kv.second.dropped && kv.second.hold_until_ns > w.mark.at_ns) continue;
      w.keys.push_back(kv.first);
    }
    return w;
  }

  // done: the store call for w succeeded.
  void done(const Work& w) {
    if (w.clear) {
      settle_all(w.mark);
      return;
    }
    MutexLock l(&mu_);
    for (const K& k : w.keys) settle_locked(k, w.mark);
    update_any_locked();
  }

  // settle: a drop or overwrite of key that began at `mark` succeeded.
  void settle(const K& key, Mark mark) {
    if (!any()) return;
    MutexLock l(&mu_);
    if (clear_at_ != 0) return;  // only a clear settles now
    settle_locked(key, mark);
    update_any_locked();
  }

  // settle_all: a clear that began at `mark` succeeded.
  void settle_all(Mark mark) {
    MutexLock l(&mu_);
    if (clear_at_ <= mark.seq) clear_at_ = 0;
    for (auto it = keys_.begin(); it != keys_.end();) {
      auto cur = it++;
      if (settles(cur->second, mark)) {
        keys_.erase(cur);
      } else if (cur->second.seq <= mark.seq) {
        cur->second.dropped = true;
      }
    }
    update_any_locked();
  }

  // ---- retry pacing ----
  bool due(TimePoint now) const {
    return to_nanos(now) >= next_try_ns_.load(std::memory_order_relaxed);
  }
  bool try_begin() { return !running_.exchange(true, std::memory_order_acquire); }
  void end() { running_.store(false, std::memory_order_release); }
  void failed(TimePoint now) {
    const int n = std::min(failures_.fetch_add(1, std::memory_order_relaxed), 16);
    const auto wait = std::min<std::chrono::nanoseconds>(
        std::chrono::nanoseconds(kRetryBase) * (std::int64_t{1} << n), kRetryMax);
    next_try_ns_.store(to_nanos(now) + wait.count(), std::memory_order_relaxed);
  }
  // delay: how long (real time) until the next attempt is worth a wake-up.
  std::chrono::nanoseconds delay(TimePoint now) const {
    const std::int64_t d = next_try_ns_.load(std::memory_order_relaxed) - to_nanos(now);
    return std::chrono::nanoseconds(std::max<std::int64_t>(
        d, std::chrono::duration_cast<std::chrono::nanoseconds>(kRetryBase).count()));
  }
  // succeeded: a re-apply attempt succeeded. The next one is due at once,
  // or, when every pending key waits for its hold, when the first hold ends.
  void succeeded() {
    MutexLock l(&mu_);
    failures_.store(0, std::memory_order_relaxed);
    std::int64_t next = 0;
    if (clear_at_ == 0 && !keys_.empty()) {
      next = std::numeric_limits<std::int64_t>::max();
      for (const auto& kv : keys_) {
        next = std::min(next, kv.second.dropped ? kv.second.hold_until_ns : 0);
        if (next == 0) break;
      }
    }
    next_try_ns_.store(next, std::memory_order_relaxed);
  }

 private:
  static std::int64_t to_nanos(TimePoint t) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  }
  // Held: why a key is pending: the add's sequence number, the end of its
  // hold, and whether a drop succeeded since the add (inside the hold).
  struct Held {
    Seq seq;
    std::int64_t hold_until_ns;
    bool dropped;
  };
  // settles: a drop or overwrite that began at mark ends h: it began after
  // the add and at or after the hold's end.
  static bool settles(const Held& h, Mark mark) {
    return h.seq <= mark.seq && mark.at_ns >= h.hold_until_ns;
  }
  void settle_locked(const K& key, Mark mark) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto it = keys_.find(key);
    if (it == keys_.end()) return;
    if (settles(it->second, mark)) {
      keys_.erase(it);
    } else if (it->second.seq <= mark.seq) {
      it->second.dropped = true;
    }
  }
  void update_any_locked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    any_.store(clear_at_ != 0 || !keys_.empty(), std::memory_order_relaxed);
  }

  const std::size_t max_keys_;
  const std::int64_t hold_ns_;
  mutable Mutex mu_;
  absl::flat_hash_map<K, Held> keys_ ABSL_GUARDED_BY(mu_);
  Seq clear_at_ ABSL_GUARDED_BY(mu_) = 0;  // 0: no clear needed
  std::atomic<Seq> seq_{0};
  std::atomic<bool> any_{false};
  std::atomic<bool> running_{false};
  std::atomic<int> failures_{0};
  std::atomic<std::int64_t> next_try_ns_{0};
};

}  // namespace larder::internal

#endif  // LARDER_INTERNAL_PENDING_INVALIDATIONS_H_
