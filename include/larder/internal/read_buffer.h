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
//   kStripes ring buffers of kSize slots; a thread uses stripe
//   (Epoch::thread_index() % kStripes), so up to kStripes threads never share
//   one. Each stripe:
//
//     head (consumer)  tail (producers)   slots[kSize] of atomic<T*>
//     ....[h ......... t)....             a slot is null when free
//
//   offer(e): t = tail, h = head; if t - h == kSize the stripe is full and e
//   is dropped (kFull). Else CAS tail t -> t + 1 claims slot t (kFailed on a
//   lost race: dropped too), then stores e with release. Returns kFilled when
//   the stripe became full with e: the caller should try to drain (try_lock).
//   drain(f): for each stripe, from head to tail, takes each non-null slot
//   (acquire), clears it and calls f(e); stops at a claimed slot whose
//   element is not stored yet (its producer is between CAS and store) and
//   publishes the new head with release. Single consumer: the caller holds
//   the lock that owns the buffer.
//
//   With one thread nothing is ever dropped: the thread drains its own
//   stripe whenever it fills (its try_lock succeeds), so the policy sees
//   every access in order, as if recorded synchronously.
//
//   Elements may point to objects that died after the offer: the consumer
//   must check liveness under its lock (a LocalStore node's policy queue).
//
// Complexity: offer O(1) (two loads, one CAS, one store, on the thread's own
// stripe); drain O(kStripes + elements).
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
  static constexpr std::uint32_t kStripes = 4;
  static constexpr std::uint32_t kSize = 16;

  enum Offer { kAdded, kFilled, kFull, kFailed };

  ReadBuffer() = default;
  ReadBuffer(const ReadBuffer&) = delete;
  ReadBuffer& operator=(const ReadBuffer&) = delete;

  // offer: appends e to the calling thread's stripe. kAdded, or kFilled when
  // the stripe is now full (drain soon); kFull / kFailed: dropped.
  Offer offer(T* e) { return offer_to(Epoch::thread_index() % kStripes, e); }

  Offer offer_to(std::uint32_t stripe, T* e) {
    Stripe& s = stripes_[stripe];
    std::uint32_t t = s.tail.load(std::memory_order_relaxed);
    const std::uint32_t h = s.head.load(std::memory_order_acquire);
    if (t - h >= kSize) return kFull;
    if (!s.tail.compare_exchange_strong(t, t + 1, std::memory_order_relaxed)) return kFailed;
    s.slots[t % kSize].store(e, std::memory_order_release);
    return t + 1 - h >= kSize ? kFilled : kAdded;
  }

  // drain: consumer only. Calls f(e) for every stored element, oldest first
  // per stripe. Returns the number of elements taken.
  template <class F>
  std::size_t drain(F&& f) {
    std::size_t n = 0;
    for (Stripe& s : stripes_) {
      std::uint32_t h = s.head.load(std::memory_order_relaxed);
      const std::uint32_t t = s.tail.load(std::memory_order_acquire);
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
    }
    return n;
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
  struct alignas(kCacheLine) Stripe {
    std::atomic<std::uint32_t> head{0};
    std::atomic<std::uint32_t> tail{0};
    std::array<std::atomic<T*>, kSize> slots{};
  };
  std::array<Stripe, kStripes> stripes_{};
};

}  // namespace larder::internal

#endif  // LARDER_INTERNAL_READ_BUFFER_H_
