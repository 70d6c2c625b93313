// SPDX-License-Identifier: Apache-2.0
//
// TimerWheel: a hierarchical timing wheel that finds expired entries in
// amortised O(1) per entry, so LocalStore reclaims expired memory proactively
// instead of waiting for capacity pressure to evict it.
//
// Design essay.
//   Entries are intrusive (they embed a TimerHook: two pointers) and are filed
//   by deadline into one of five wheels of coarser and coarser buckets:
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
//   struct Item : TimerHook { std::int64_t deadline; };
//   struct DeadlineOf { std::int64_t operator()(const TimerHook* h) const {
//     return static_cast<const Item*>(h)->deadline; } };
//   TimerWheel<DeadlineOf> wheel(/*origin_ns=*/0);
//   wheel.schedule(&item);
//   wheel.advance(now_ns, [](TimerHook* h) { /* h expired and is unlinked */ });
#ifndef LARDER_INTERNAL_TIMER_WHEEL_H_
#define LARDER_INTERNAL_TIMER_WHEEL_H_

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>

namespace larder::internal {

// TimerHook: the links an entry embeds to sit in a TimerWheel bucket.
struct TimerHook {
  TimerHook* tprev = nullptr;
  TimerHook* tnext = nullptr;
  bool scheduled() const { return tnext != nullptr; }
};

// DeadlineOf: a functor `std::int64_t(const TimerHook*)` giving the entry's
// deadline in absolute nanoseconds (the same scale as origin and now).
template <class DeadlineOf>
class TimerWheel {
 public:
  static constexpr int kLevels = 5;
  static constexpr std::array<std::uint64_t, kLevels> kBuckets{64, 64, 32, 4, 1};
  static constexpr std::array<int, kLevels + 1> kShift{30, 36, 42, 48, 53, 53};

  explicit TimerWheel(std::int64_t origin_ns, DeadlineOf deadline_of = {})
      : origin_(origin_ns), deadline_of_(deadline_of) {
    for (int l = 0; l < kLevels; ++l) {
      for (std::uint64_t b = 0; b < kBuckets[l]; ++b) {
        TimerHook& s = wheel_[l][b];
        s.tprev = s.tnext = &s;
      }
    }
  }
  TimerWheel(const TimerWheel&) = delete;
  TimerWheel& operator=(const TimerWheel&) = delete;

  // schedule: files an unscheduled hook by its deadline. O(1).
  void schedule(TimerHook* h) {
    TimerHook* s = bucket_for(rel(deadline_of_(h)));
    h->tnext = s;
    h->tprev = s->tprev;
    s->tprev->tnext = h;
    s->tprev = h;
    ++size_;
  }

  // unschedule: removes the hook if it is filed. O(1).
  void unschedule(TimerHook* h) {
    if (h->tnext == nullptr) return;
    h->tprev->tnext = h->tnext;
    h->tnext->tprev = h->tprev;
    h->tprev = h->tnext = nullptr;
    --size_;
  }

  // reschedule: re-files the hook after its deadline changed. O(1).
  void reschedule(TimerHook* h) {
    unschedule(h);
    schedule(h);
  }

  // advance: moves the wheel to now_ns and calls expired(hook) for every hook
  // whose deadline is <= now_ns among the buckets that passed; the hook is
  // unlinked before the call, and expired may free it. Amortised O(1) per
  // hook; O(1) when no level-0 tick passed.
  template <class F>
  void advance(std::int64_t now_ns, F&& expired) {
    const std::uint64_t now = rel(now_ns);
    if (now <= now_) return;
    const std::uint64_t prev = now_;
    now_ = now;
    for (int l = 0; l < kLevels; ++l) {
      const std::uint64_t pt = prev >> kShift[l];
      const std::uint64_t ct = now >> kShift[l];
      if (ct == pt) break;
      expire(l, pt, ct, expired);
    }
  }

  std::size_t size() const { return size_; }
  // now_ns: the wheel's current time (absolute nanoseconds).
  std::int64_t now_ns() const { return origin_ + static_cast<std::int64_t>(now_); }

 private:
  std::uint64_t rel(std::int64_t t) const {
    return t <= origin_ ? 0 : static_cast<std::uint64_t>(t - origin_);
  }

  TimerHook* bucket_for(std::uint64_t t) {
    t = std::max(t, now_);
    const std::uint64_t distance = t - now_;
    for (int l = 0; l < kLevels - 1; ++l) {
      if (distance < (std::uint64_t{1} << kShift[l + 1])) {
        const std::uint64_t ticks = t >> kShift[l];
        return &wheel_[l][ticks & (kBuckets[l] - 1)];
      }
    }
    return &wheel_[kLevels - 1][0];
  }

  template <class F>
  void expire(int l, std::uint64_t pt, std::uint64_t ct, F& expired) {
    const std::uint64_t mask = kBuckets[l] - 1;
    const std::uint64_t steps = std::min<std::uint64_t>(ct - pt + 1, kBuckets[l]);
    const std::uint64_t start = pt & mask;
    for (std::uint64_t i = 0; i < steps; ++i) {
      TimerHook* s = &wheel_[l][(start + i) & mask];
      if (s->tnext == s) continue;
      TimerHook* n = s->tnext;
      s->tprev->tnext = nullptr;  // terminate the detached chain
      s->tprev = s->tnext = s;
      while (n != nullptr) {
        TimerHook* next = n->tnext;
        n->tprev = n->tnext = nullptr;
        --size_;
        if (rel(deadline_of_(n)) <= now_) {
          expired(n);
        } else {
          schedule(n);
        }
        n = next;
      }
    }
  }

  std::int64_t origin_;
  std::uint64_t now_ = 0;  // relative to origin_
  std::size_t size_ = 0;
  DeadlineOf deadline_of_;
  std::array<std::array<TimerHook, 64>, kLevels> wheel_{};
};

}  // namespace larder::internal

#endif  // LARDER_INTERNAL_TIMER_WHEEL_H_
