// SPDX-License-Identifier: Apache-2.0
//
// ReadBuffer<T>: striped, bounded, lossy buffers of T* that readers append to
// without a lock and one consumer (holding the owner's lock) drains. A
// LocalStore shard records every hit here and replays the hits into its
// eviction policy later, under its lock, in batches.
//
// How it differs from the obvious alternative (take the lock on every read to
// update the policy): readers never wait and never write a line another
// reader writes, because each thread appends to its own stripe; the price is
// that a record may be dropped when a stripe is full and the lock is busy,
// which only makes the policy's view of recency and frequency approximate
// under contention (Caffeine's BoundedBuffer, "BP-Wrapper", Ding et al., ICDE
// 2009).
//
// Design essay.
//
//   kStripes ring buffers of kSize slots. Threads with Epoch::thread_index()
//   below kStripes - 1 own the stripe of that index and append with plain
//   stores (no locked instruction: a full barrier per read would stop the
//   CPU from overlapping consecutive lookups' cache misses); all other
//   threads share the last stripe and claim slots with a CAS. Each stripe:
//
//     head (consumer)  tail (producers)   slots[kSize] of atomic<T*>
//     ....[h ......... t)....             a slot is null when free
//
//   offer(e) on a shared stripe (an owned one stores tail instead of the
//   CAS, after the element): t = tail, h = head; if t - h == kSize the
//   stripe is full and e
//   is dropped: kDropped, except every kRetryAfter-th drop on the stripe,
//   which returns kFull (try to drain again). Else CAS tail t -> t + 1 claims
//   slot t (kFailed on a lost race: dropped too), then stores e with
//   release. Returns kFilled when the stripe became full with e: the caller
//   should try to drain (try_lock). A stripe is only ever found full after a
//   drain attempt failed (contention), so under contention a thread records
//   about kSize of every kSize + kRetryAfter accesses: the recording rate,
//   and with it the policy's work, shrinks exactly when threads compete.
//   drain(f): for each stripe, from head to tail, takes each non-null slot
//   (acquire), clears it and calls f(e); stops at a claimed slot whose
//   element is not stored yet (its producer is between CAS and store) and
//   publishes the new head with release. Single consumer: the caller holds
//   the lock that owns the buffer. drain_own(f) drains only the calling
//   thread's stripe (a writer keeps its own accesses ahead of its write
//   without touching the lines other readers are writing).
//
//   With one thread nothing is ever dropped: the thread drains its own
//   stripe whenever it fills (its try_lock succeeds), so the policy sees
//   every access in order, as if recorded synchronously.
//
//   Sampling under contention. Dropping full stripes alone still lets the
//   thread that drains record all of its own accesses and pay for everyone's
//   policy work (on a store of 1M entries a recorded access costs the
//   policy 50-100 ns of cache misses, a lookup ~40 ns). So drain() also
//   counts the stripes it found non-empty: when two or more threads recorded
//   since the last drain, it sets the sample mask to kContendedMask and every
//   offer() then records one access in kContendedMask + 1 (counted per
//   thread, in a thread_local: no shared line) and returns kSkipped for the
//   others; after kCalmDrains consecutive drains that found a single
//   stripe busy, the mask goes back to 0 (record everything). The mask is
//   a read-mostly word on its own line, written only when it changes. A
//   frequency sketch fed a uniform 1-in-16 sample ranks keys as the full
//   stream would (the estimates scale), and a hot entry is still recorded
//   often enough to stay recent; the single-thread case, which the
//   simulator and the tests replay, is exact.
//
//   Elements may point to objects that died after the offer: the consumer
//   must check liveness under its lock (a LocalStore node's policy queue).
//
// Complexity: offer O(1) (two loads and two stores on the thread's own
// stripe; a CAS on the shared one); drain O(kStripes + elements).
//
// Thread-safety: offer from any thread; drain and clear only by the single
// consumer (under its lock).
//
// Example:
//   ReadBuffer<Node> buf;
//   if (buf.offer(n) == ReadBuffer<Node>::kFilled && mu.try_lock()) {
//     buf.drain([&](Node* e) { if (alive(e)) policy.on_access(e); });
//     mu.unlock();
//   }
#ifndef LARDER_INTERNAL_READ_BUFFER_H_
#define LARDER_INTERNAL_READ_BUFFER_H_

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

#include "larder/internal/epoch.h"
#include "larder/internal/striped_counter.h"

namespace larder::internal {

template <class T>
class ReadBuffer {
 public:
  static constexpr std::uint32_t kStripes = 8;
  static constexpr std::uint32_t kSize = 16;

  static constexpr std::uint32_t kRetryAfter = 3 * kSize;

  // Under contention (>= 2 stripes busy at a drain) one offer in
  // kContendedMask + 1 per thread is recorded; kCalmDrains drains that find
  // one busy stripe turn sampling off again.
  static constexpr std::uint32_t kContendedMask = 15;
  static constexpr std::uint32_t kCalmDrains = 2;

  enum Offer { kAdded, kFilled, kFull, kDropped, kFailed, kSkipped };

  ReadBuffer() = default;
  ReadBuffer(const ReadBuffer&) = delete;
  ReadBuffer& operator=(const ReadBuffer&) = delete;

  // offer: appends e to the calling thread's stripe. kAdded, or kFilled when
  // the stripe is now full (drain soon); kFull (drain now), kDropped and
  // kFailed: e was dropped; kSkipped: not sampled (contention, see above).
  Offer offer(T* e) {
    const std::uint32_t mask = mask_.value.load(std::memory_order_relaxed);
    if (mask != 0) [[unlikely]] {
      // The thread's own count (no shared line), across all buffers.
      static thread_local std::uint32_t seen = 0;
      if ((++seen & mask) != 0) return kSkipped;
    }
    const std::uint32_t i = Epoch::thread_index();
    return i < kStripes - 1 ? offer_owned(i, e) : offer_to(kStripes - 1, e);
  }

  // sample_mask: 0 when every offer is recorded, kContendedMask while
  // sampling (racy; for tests and stats).
  std::uint32_t sample_mask() const { return mask_.value.load(std::memory_order_relaxed); }

  // offer_owned: the caller is the only thread offering to this stripe.
  Offer offer_owned(std::uint32_t stripe, T* e) {
    Stripe& s = stripes_[stripe];
    const std::uint32_t t = s.tail.load(std::memory_order_relaxed);
    const std::uint32_t h = s.head.load(std::memory_order_acquire);
    if (t - h >= kSize) {
      const std::uint32_t d = s.dropped.load(std::memory_order_relaxed) + 1;
      s.dropped.store(d, std::memory_order_relaxed);
      return d % kRetryAfter == 0 ? kFull : kDropped;
    }
    s.slots[t % kSize].store(e, std::memory_order_release);
    s.tail.store(t + 1, std::memory_order_release);
    return t + 1 - h >= kSize ? kFilled : kAdded;
  }

  // offer_to: any number of threads may offer to this stripe concurrently.
  Offer offer_to(std::uint32_t stripe, T* e) {
    Stripe& s = stripes_[stripe];
    std::uint32_t t = s.tail.load(std::memory_order_relaxed);
    const std::uint32_t h = s.head.load(std::memory_order_acquire);
    if (t - h >= kSize) {
      const std::uint32_t d = s.dropped.fetch_add(1, std::memory_order_relaxed) + 1;
      return d % kRetryAfter == 0 ? kFull : kDropped;
    }
    if (!s.tail.compare_exchange_strong(t, t + 1, std::memory_order_relaxed)) return kFailed;
    s.slots[t % kSize].store(e, std::memory_order_release);
    return t + 1 - h >= kSize ? kFilled : kAdded;
  }

  // drain: consumer only. Calls f(e) for every stored element, oldest first
  // per stripe. Returns the number of elements taken.
  template <class F>
  std::size_t drain(F&& f) {
    std::size_t n = 0;
    std::uint32_t busy = 0;
    for (Stripe& s : stripes_) {
      const std::size_t k = drain_stripe(s, f);
      busy += k != 0 ? 1 : 0;
      n += k;
    }
    update_mask(busy);
    return n;
  }

  // drain_own: consumer only. Like drain(), for the calling thread's stripe
  // alone (a line that thread already holds: cheap, and enough to keep the
  // thread's own accesses in order ahead of its write).
  template <class F>
  std::size_t drain_own(F&& f) {
    const std::uint32_t i = Epoch::thread_index();
    return drain_stripe(stripes_[i < kStripes - 1 ? i : kStripes - 1], f);
  }

  // pending: a racy estimate of the elements waiting (for tests and heuristics).
  std::size_t pending() const {
    std::size_t n = 0;
    for (const Stripe& s : stripes_) {
      n += s.tail.load(std::memory_order_relaxed) - s.head.load(std::memory_order_relaxed);
    }
    return n;
  }

 private:
  struct Stripe;

  template <class F>
  static std::size_t drain_stripe(Stripe& s, F& f) {
    std::size_t n = 0;
    std::uint32_t h = s.head.load(std::memory_order_relaxed);
    const std::uint32_t t = s.tail.load(std::memory_order_acquire);
    if (h == t) return 0;
    while (h != t) {
      std::atomic<T*>& slot = s.slots[h % kSize];
      T* e = slot.load(std::memory_order_acquire);
      if (e == nullptr) break;  // claimed, not stored yet
      slot.store(nullptr, std::memory_order_relaxed);
      f(e);
      ++h;
      ++n;
    }
    s.head.store(h, std::memory_order_release);
    return n;
  }

  // update_mask: consumer only (after a full drain that found `busy`
  // non-empty stripes).
  void update_mask(std::uint32_t busy) {
    const std::uint32_t old = mask_.value.load(std::memory_order_relaxed);
    std::uint32_t next = old;
    if (busy >= 2) {
      calm_ = 0;
      next = kContendedMask;
    } else if (busy == 1 && old != 0 && ++calm_ >= kCalmDrains) {
      calm_ = 0;
      next = 0;
    }
    if (next != old) mask_.value.store(next, std::memory_order_relaxed);
  }

  struct alignas(kCacheLine) Stripe {
    std::atomic<std::uint32_t> head{0};
    std::atomic<std::uint32_t> tail{0};
    std::atomic<std::uint32_t> dropped{0};
    std::array<std::atomic<T*>, kSize> slots{};
  };
  struct alignas(kCacheLine) Mask {
    std::atomic<std::uint32_t> value{0};
  };
  Mask mask_;               // written by the consumer when it changes
  std::uint32_t calm_ = 0;  // consumer only
  std::array<Stripe, kStripes> stripes_{};
};

}  // namespace larder::internal

#endif  // LARDER_INTERNAL_READ_BUFFER_H_
