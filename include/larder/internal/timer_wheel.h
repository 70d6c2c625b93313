// SPDX-License-Identifier: Apache-2.0
//
// TimerWheel: a hierarchical timing wheel that finds expired entries in
// amortised O(1) per entry, so LocalStore reclaims expired memory proactively
// instead of waiting for capacity pressure to evict it.
//
// Design essay.
//   Entries are intrusive: each embeds a TimerHook of two 32-bit ids (the
//   previous and next entry in its bucket), not two pointers, so a LocalStore
//   entry pays 8 bytes for expiry instead of 16. The owner names entries by a
//   dense 32-bit id and tells the wheel how to find an id's hook and deadline
//   (the Nodes parameter); the buckets' sentinels use ids from kSentinelBase
//   up, which entries never use. Entries are filed by deadline into one of
//   five wheels of coarser and coarser buckets:
//
//     level  buckets  bucket span        wheel span
//       0       64    2^30 ns ~ 1.07 s   ~ 1.1 min
//       1       64    2^36 ns ~ 1.1 min  ~ 1.2 h
//       2       32    2^42 ns ~ 1.2 h    ~ 1.6 d
//       3        4    2^48 ns ~ 3.3 d    ~ 13 d
//       4        1    everything further (re-filed when level 4 ticks)
//
//   An entry goes to the finest level whose wheel span covers its distance
//   from the wheel's current time. advance(now) visits, at each level, the
//   buckets whose tick passed since the last advance (at most the whole wheel):
//   each entry there is either expired (handed to the caller) or re-filed,
//   which moves it to a finer level ("cascading"). An entry is re-filed at most
//   once per level, so the work per entry is O(levels) over its life, and an
//   advance within the same level-0 tick costs one shift and compare.
//   Expiry is detected with bucket granularity: an entry is reclaimed at the
//   first advance after its level-0 bucket (~1 s) has passed. Lookups never
//   rely on the wheel: the store checks stale_until itself, so an expired entry
//   is never returned even before the wheel gets to it.
//
//   Next due time. The wheel keeps a lower bound on the next time advance()
//   has work (next_due_ns()): for each level, the tick of its first
//   non-empty bucket from the current one on; a level-0 bucket has work
//   once its tick has passed (its entries expire), a coarser bucket when
//   its tick begins (its entries cascade). schedule() lowers the bound in
//   O(1) (the new entry's bucket); unschedule() leaves it (a stale, early
//   bound costs one advance that finds nothing); an advance that reaches it
//   does its work and recomputes it by scanning for the first non-empty
//   bucket of each level (O(buckets) at worst, at most once per due time).
//   Before the bound, advance() only moves the wheel's time: no bucket it
//   skips holds anything. The owner publishes the bound so that callers
//   can tell, with one comparison, whether there is expiry work to do
//   (LocalStore's readers) and when to come back (its maintenance
//   scheduler).
//
//   Times are nanoseconds relative to the wheel's origin and never go back:
//   a deadline before the wheel's current time is filed in the current bucket
//   (reclaimed at the next tick), and advance() to an earlier time is a no-op.
//
//   Why a wheel and not a priority queue: a heap costs O(log n) per insert,
//   update and removal, on every put; the wheel is O(1) for all three and the
//   expiry scan is amortised. Why not a sampled sweep (Redis' active expiry):
//   sampling gives no bound on how long an expired entry lingers. The scheme
//   is Varghese and Lauck, "Hashed and Hierarchical Timing Wheels" (1987), with
//   the power-of-two spans of Caffeine's TimerWheel.
//
// Thread-safety: none; the owning store shard guards it with its lock.
//
// Example:
//   struct Items {   // the Nodes parameter
//     std::vector<Item>* v;  // Item : TimerHook { std::int64_t deadline; }
//     TimerHook& hook(std::uint32_t id) const { return (*v)[id]; }
//     std::int64_t deadline(std::uint32_t id) const { return (*v)[id].deadline; }
//   };
//   TimerWheel<Items> wheel(/*origin_ns=*/0, Items{&items});
//   wheel.schedule(3);
//   wheel.advance(now_ns, [](std::uint32_t id) { /* id expired and is unlinked */ });
//   std::int64_t again = wheel.next_due_ns();  // nothing to do before this
#ifndef LARDER_INTERNAL_TIMER_WHEEL_H_
#define LARDER_INTERNAL_TIMER_WHEEL_H_

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>

namespace larder::internal {

// TimerHook: the links an entry embeds to sit in a TimerWheel bucket: the
// ids of its neighbours, kNil when not scheduled.
struct TimerHook {
  static constexpr std::uint32_t kNil = 0xffffffffu;
  std::uint32_t tprev = kNil;
  std::uint32_t tnext = kNil;
  bool scheduled() const { return tnext != kNil; }
};

// Nodes: `TimerHook& hook(std::uint32_t id)` and `std::int64_t
// deadline(std::uint32_t id)` (absolute nanoseconds, the scale of origin and
// now) for every id below kSentinelBase that the owner schedules.
template <class Nodes>
class TimerWheel {
 public:
  static constexpr int kLevels = 5;
  static constexpr std::array<std::uint64_t, kLevels> kBuckets{64, 64, 32, 4, 1};
  static constexpr std::array<int, kLevels + 1> kShift{30, 36, 42, 48, 53, 53};
  // Ids from here up name the wheel's own sentinels; entries use lower ids.
  static constexpr std::uint32_t kSentinelBase = 0xfffff000u;

  explicit TimerWheel(std::int64_t origin_ns, Nodes nodes = {})
      : origin_(origin_ns), nodes_(nodes) {
    for (int l = 0; l < kLevels; ++l) {
      for (std::uint64_t b = 0; b < kBuckets[l]; ++b) {
        const std::uint32_t id = sentinel_id(l, b);
        TimerHook& s = at(id);
        s.tprev = s.tnext = id;
      }
    }
  }
  TimerWheel(const TimerWheel&) = delete;
  TimerWheel& operator=(const TimerWheel&) = delete;

  // schedule: files an unscheduled entry by its deadline. O(1).
  void schedule(std::uint32_t id) {
    const Slot slot = slot_for(rel(nodes_.deadline(id)));
    const std::uint32_t s = sentinel_id(slot.level, slot.tick & (kBuckets[slot.level] - 1));
    TimerHook& h = at(id);
    TimerHook& sh = at(s);
    h.tnext = s;
    h.tprev = sh.tprev;
    at(sh.tprev).tnext = id;
    sh.tprev = id;
    ++size_;
    due_ = std::min(due_, due_for(slot.level, slot.tick));
  }

  // unschedule: removes the entry if it is filed. O(1).
  void unschedule(std::uint32_t id) {
    TimerHook& h = at(id);
    if (h.tnext == TimerHook::kNil) return;
    at(h.tprev).tnext = h.tnext;
    at(h.tnext).tprev = h.tprev;
    h.tprev = h.tnext = TimerHook::kNil;
    if (--size_ == 0) due_ = kNever;
  }

  // reschedule: re-files the entry after its deadline changed. O(1).
  void reschedule(std::uint32_t id) {
    unschedule(id);
    schedule(id);
  }

  // advance: moves the wheel to now_ns and calls expired(id) for every entry
  // whose deadline is <= now_ns among the buckets that passed; the entry is
  // unlinked before the call, and expired may free it. Amortised O(1) per
  // entry; O(1) before next_due_ns().
  template <class F>
  void advance(std::int64_t now_ns, F&& expired) {
    const std::uint64_t now = rel(now_ns);
    if (now <= now_) return;
    const std::uint64_t prev = now_;
    now_ = now;
    if (now < due_) return;  // no bucket with work passed (see next_due_ns)
    for (int l = 0; l < kLevels; ++l) {
      const std::uint64_t pt = prev >> kShift[l];
      const std::uint64_t ct = now >> kShift[l];
      if (ct == pt) break;
      expire(l, pt, ct, expired);
    }
    due_ = scan_due();
  }

  // next_due_ns: a lower bound on the time at which advance() next has work:
  // before it, advance() expires nothing and moves no entry. An entry whose
  // deadline is d is expired by the first advance at or after the end of d's
  // level-0 tick, so next_due_ns() <= that end for every scheduled entry.
  // INT64_MAX when nothing is scheduled. O(1).
  std::int64_t next_due_ns() const {
    if (due_ == kNever) return std::numeric_limits<std::int64_t>::max();
    std::int64_t out;
    const auto d = static_cast<std::int64_t>(
        std::min<std::uint64_t>(due_, std::numeric_limits<std::int64_t>::max()));
    if (__builtin_add_overflow(origin_, d, &out)) return std::numeric_limits<std::int64_t>::max();
    return out;
  }

  std::size_t size() const { return size_; }

 private:
  static constexpr std::uint32_t sentinel_id(int l, std::uint64_t b) {
    return kSentinelBase + static_cast<std::uint32_t>(l * 64 + static_cast<int>(b));
  }
  TimerHook& at(std::uint32_t id) {
    return id >= kSentinelBase ? sentinels_[id - kSentinelBase] : nodes_.hook(id);
  }

  std::uint64_t rel(std::int64_t t) const {
    return t <= origin_ ? 0 : static_cast<std::uint64_t>(t - origin_);
  }

  // Slot: where an entry with relative deadline t is filed: the finest level
  // whose wheel span covers its distance from now_, and its tick at that
  // level (the bucket is tick mod the level's buckets; level 4 has one).
  struct Slot {
    int level;
    std::uint64_t tick;
  };
  Slot slot_for(std::uint64_t t) const {
    t = std::max(t, now_);
    const std::uint64_t distance = t - now_;
    for (int l = 0; l < kLevels - 1; ++l) {
      if (distance < (std::uint64_t{1} << kShift[l + 1])) return {l, t >> kShift[l]};
    }
    return {kLevels - 1, t >> kShift[kLevels - 1]};
  }

  // due_for: the earliest time (relative) at which advance() does work for
  // an entry filed at (level, tick): level 0 expires it once its tick has
  // passed (the visit at the tick's start, if any, would only re-file it);
  // a coarser level re-files it (cascades) when its tick begins, or at the
  // level's next tick when that tick is the current one.
  std::uint64_t due_for(int l, std::uint64_t tick) const {
    const std::uint64_t ct = now_ >> kShift[l];
    const std::uint64_t first = l == 0 ? std::max(tick, ct) + 1 : std::max(tick, ct + 1);
    return first > (kNever >> kShift[l]) ? kNever : first << kShift[l];
  }

  // scan_due: due_ recomputed from the buckets: at each level, the first
  // non-empty bucket from the current tick on (its entries' ticks are that
  // tick or later, by a multiple of the level's buckets). A level whose
  // earliest possible due is not below the best so far, and every coarser
  // one, is skipped. O(buckets) at worst.
  std::uint64_t scan_due() {
    if (size_ == 0) return kNever;
    std::uint64_t best = kNever;
    for (int l = 0; l < kLevels; ++l) {
      if (due_for(l, 0) >= best) break;
      const std::uint64_t ct = now_ >> kShift[l];
      const std::uint64_t mask = kBuckets[l] - 1;
      for (std::uint64_t i = 0; i < kBuckets[l]; ++i) {
        const std::uint32_t sid = sentinel_id(l, (ct + i) & mask);
        if (at(sid).tnext != sid) {
          best = std::min(best, due_for(l, ct + i));
          break;
        }
      }
    }
    return best;
  }

  template <class F>
  void expire(int l, std::uint64_t pt, std::uint64_t ct, F& expired) {
    const std::uint64_t mask = kBuckets[l] - 1;
    const std::uint64_t steps = std::min<std::uint64_t>(ct - pt + 1, kBuckets[l]);
    const std::uint64_t start = pt & mask;
    for (std::uint64_t i = 0; i < steps; ++i) {
      const std::uint32_t sid = sentinel_id(l, (start + i) & mask);
      TimerHook& s = at(sid);
      if (s.tnext == sid) continue;
      std::uint32_t n = s.tnext;
      at(s.tprev).tnext = TimerHook::kNil;  // terminate the detached chain
      s.tprev = s.tnext = sid;
      while (n != TimerHook::kNil) {
        TimerHook& h = at(n);
        const std::uint32_t next = h.tnext;
        h.tprev = h.tnext = TimerHook::kNil;
        --size_;
        if (rel(nodes_.deadline(n)) <= now_) {
          expired(n);
        } else {
          schedule(n);
        }
        n = next;
      }
    }
  }

  static constexpr std::uint64_t kNever = std::numeric_limits<std::uint64_t>::max();

  std::int64_t origin_;
  std::uint64_t now_ = 0;  // relative to origin_
  std::size_t size_ = 0;
  // A lower bound on the next time (relative) advance() has work: lowered by
  // schedule(), recomputed by an advance that reached it; kNever when empty.
  std::uint64_t due_ = kNever;
  Nodes nodes_;
  std::array<TimerHook, kLevels * 64> sentinels_{};
};

}  // namespace larder::internal

#endif  // LARDER_INTERNAL_TIMER_WHEEL_H_
