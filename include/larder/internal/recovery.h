// SPDX-License-Identifier: Apache-2.0
//
// Recovery<K, V>: a cache's auto-recovery, the drops of old copies that the
// store could not apply yet.
//
// A change (put in any mode, erase, invalidate, a refresh that found a
// different value) must drop or overwrite the store's old copy. When the
// store fails (Redis down, or stalled and applying the command later), the
// old copy may survive in Redis, and other instances' L1s never hear about it.
// The key goes into a bounded set of pending invalidations
// (pending_invalidations.h, CacheOptions::max_pending_invalidations; counted in
// CacheStats::invalidations_deferred). While a key is pending this process
// never serves it from the store: reads treat it as a miss and load it
// (suspect, forget_suspects). A repair task on the executor re-applies the
// drops with Store::erase_many (for a TieredStore that also re-publishes them
// on the bus), first as soon as any read or write sees something pending
// (schedule_repair), then backing off from 50 ms to 1 s of the Clock while the
// store keeps failing; ~Cache makes one last attempt (repair_now). A
// Scheduler (CacheOptions::scheduler; with the system clock by default the
// process-wide default_scheduler()) also starts the repair at that pace when
// no call comes along (wake_later: one wake-up outstanding at a time), so the
// drop is re-applied within about a second of the store answering again.
// With another Clock and no scheduler given (ManualClock in tests) repairs
// are driven by calls only, so that tests decide when time passes.
//
// Past max_pending_invalidations keys (or after a failed invalidate_all)
// every key is treated as pending until one Store::clear() succeeds; with a
// store that cannot clear, those keys are served again and may be stale until
// their stale_until.
//
// Writers of the store take mark() before their store call and settle() with
// it after a success (pending_invalidations.h explains why that is race-free).
//
// A failed store write may still be applied later (a SET that timed out on a
// stalled server or a slow network lands after the repair's drop, or after a
// newer overwrite). So a deferred key stays suspect for
// CacheOptions::late_write_window after its failure, and its drop is applied
// once as soon as the store answers and once more after the window
// (pending_invalidations.h, "Late writes"). A fill (a loaded value) that timed
// out is deferred for the same reason (it may land after a later put), but
// only while the set has room (defer_if_room): a long stall must not turn
// into a clear of the whole shared store.
//
// Thread-safety: every method may be called concurrently. The hit path pays
// one relaxed load (any()) while nothing is pending.
#ifndef LARDER_INTERNAL_RECOVERY_H_
#define LARDER_INTERNAL_RECOVERY_H_

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "absl/base/optimization.h"
#include "absl/status/status.h"
#include "larder/internal/cache_state.h"
#include "larder/internal/pending_invalidations.h"
#include "larder/scheduler.h"

namespace larder::internal {

template <class K, class V>
class Recovery {
 public:
  using Mark = typename PendingInvalidations<K>::Mark;

  explicit Recovery(CacheState<K, V>& s)
      : s_(s),
        pending_(std::max<std::size_t>(s.opt.max_pending_invalidations, 1),
                 s.opt.late_write_window),
        scheduler_(s.opt.scheduler != nullptr  ? s.opt.scheduler
                   : s.fresh.is_system_clock() ? default_scheduler()
                                               : nullptr) {}

  bool any() const { return pending_.any(); }
  Mark mark() const { return pending_.mark(s_.fresh.now()); }
  void settle(const K& key, Mark mark) { pending_.settle(key, mark); }
  void settle_all(Mark mark) { pending_.settle_all(mark); }

  // defer: key's old copy may still be in the store.
  void defer(const K& key) {
    if (pending_.add(key, s_.fresh.now())) s_.counters.invalidations_deferred.add();
    wake_later();
  }

  // defer_if_room: defer() as a precaution (a fill that timed out may still
  // land after a later put): only while the set has room, so it never turns
  // into a clear of the whole store.
  void defer_if_room(const K& key) {
    if (pending_.add_if_room(key, s_.fresh.now())) {
      s_.counters.invalidations_deferred.add();
      wake_later();
    }
  }

  // defer_clear: a clear failed: every key is suspect until one succeeds.
  void defer_clear() {
    s_.counters.invalidations_deferred.add();
    pending_.add_clear();
    wake_later();
  }

  // suspect: (any() was true) whether key must not be served from the store
  // now; schedules a repair when one is due.
  bool suspect(const K& key, TimePoint now);

  // is_suspect: the same without scheduling (background paths).
  bool is_suspect(const K& key) const {
    return ABSL_PREDICT_FALSE(pending_.any()) && pending_.suspect(key);
  }

  // forget_suspects: a batch read's answers for suspect keys are dropped.
  void forget_suspects(std::span<const K> keys, std::vector<std::optional<Entry<V>>>& entries,
                       TimePoint now) {
    if (ABSL_PREDICT_TRUE(!pending_.any())) return;
    schedule_repair(now);
    for (std::size_t i = 0; i < keys.size(); ++i) {
      if (entries[i].has_value() && pending_.suspect(keys[i])) entries[i].reset();
    }
  }

  // repair_now: re-applies deferred invalidations in the caller (~Cache's
  // last attempt). No-op when another repair is running.
  void repair_now() {
    if (!pending_.any() || !pending_.try_begin()) return;
    repair();
    pending_.end();
  }

  // For CacheStats::invalidations_pending.
  std::size_t pending_count() const { return pending_.size() + (pending_.clear_needed() ? 1 : 0); }

 private:
  static constexpr std::size_t kRepairBatch = 1024;

  void schedule_repair(TimePoint now) {
    if (!pending_.due(now) || !pending_.try_begin()) return;
    const bool queued = s_.tasks.submit(
        [this] {
          repair();
          pending_.end();
        },
        [this] { pending_.end(); });
    if (!queued) pending_.end();
  }

  // repair: re-applies what pending_ holds until it is empty or the store
  // fails (then backs off). Caller holds pending_'s running flag.
  void repair() {
    for (int round = 0; round < 64 && pending_.any(); ++round) {
      typename PendingInvalidations<K>::Work w = pending_.work(kRepairBatch, s_.fresh.now());
      if (!w.clear && w.keys.empty()) {  // every key waits for its hold to end
        pending_.succeeded();            // next attempt: when the first hold ends
        break;
      }
      absl::Status s =
          w.clear ? s_.store->clear() : s_.store->erase_many(std::span<const K>(w.keys));
      // A store that cannot clear: nothing more can be done for overflowed
      // keys; they are served until their stale_until (documented).
      if (w.clear && s.code() == absl::StatusCode::kUnimplemented) s = absl::OkStatus();
      if (!s.ok()) {
        s_.counters.store_errors.add();
        pending_.failed(s_.fresh.now());
        wake_later();
        return;
      }
      s_.counters.invalidations_reapplied.add(w.clear ? 1 : w.keys.size());
      pending_.done(w);
      pending_.succeeded();
    }
    // Keys inside their hold are dropped once more when it ends.
    if (pending_.any()) wake_later();
  }

  // wake_later: a repair is also attempted without any traffic, at the
  // back-off's pace, from the scheduler (when there is one). One wake-up is
  // outstanding at a time.
  void wake_later() {
    if (scheduler_ == nullptr || waking_.exchange(true)) return;
    const TimePoint now = s_.fresh.now();
    const bool ok =
        scheduler_->schedule(now + pending_.delay(now), [this, weak = s_.tasks.weak_owner()] {
          // The owner alive means this part is too.
          if (std::shared_ptr<TaskOwner> owner = weak.lock()) on_wake();
        });
    if (!ok) waking_.store(false);
  }

  void on_wake() {
    waking_.store(false);
    if (!pending_.any()) return;
    schedule_repair(s_.fresh.now());
    wake_later();
  }

  CacheState<K, V>& s_;
  PendingInvalidations<K> pending_;
  const std::shared_ptr<Scheduler> scheduler_;  // null: calls drive the repairs
  std::atomic<bool> waking_{false};             // a wake-up is scheduled
};

// Recovery::suspect: out of line and not inline (a cold path of every read),
// so that it is compiled once in larder::core for the common <K, V>
// (cache_core.h declares Recovery `extern template`).
template <class K, class V>
bool Recovery<K, V>::suspect(const K& key, TimePoint now) {
  schedule_repair(now);
  return pending_.suspect(key);
}

}  // namespace larder::internal

#endif  // LARDER_INTERNAL_RECOVERY_H_
