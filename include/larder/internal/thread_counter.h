// SPDX-License-Identifier: Apache-2.0
//
// ThreadCounter: a monotonic counter whose increments are plain stores to a
// cell owned by the incrementing thread, for counting on a hot path that
// must not execute a locked instruction.
//
// How it differs from StripedCounter (striped_counter.h): a striped counter
// does fetch_add (a `lock xadd` on x86), a full barrier that stops the CPU
// from overlapping this operation's cache misses with the next one's. Here
// the first kOwned threads (by Epoch::thread_index(), unique among live
// threads) each own a cell and increment it with a relaxed load and store;
// further threads share one cell with fetch_add. A cell passes to a new
// thread only after its previous owner exited (Epoch's record hand-over is
// a release/acquire pair), so increments are never lost.
//
// Thread-safety: add() from any thread; load() from any thread (a sum of
// relaxed loads: exact once the adders are quiescent).
//
// Example:
//   ThreadCounter hits;
//   hits.add();
//   std::uint64_t n = hits.load();
#ifndef LARDER_INTERNAL_THREAD_COUNTER_H_
#define LARDER_INTERNAL_THREAD_COUNTER_H_

#include <array>
#include <atomic>
#include <cstdint>

#include "absl/base/attributes.h"
#include "larder/internal/epoch.h"
#include "larder/internal/striped_counter.h"

namespace larder::internal {

class ThreadCounter {
 public:
  static constexpr std::uint32_t kOwned = 15;

  ABSL_ATTRIBUTE_ALWAYS_INLINE void add(std::uint64_t n = 1) {
    const std::uint32_t i = Epoch::thread_index();
    if (i < kOwned) {
      std::atomic<std::uint64_t>& c = cells_[i].v;
      c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    } else {
      cells_[kOwned].v.fetch_add(n, std::memory_order_relaxed);
    }
  }
  std::uint64_t load() const {
    std::uint64_t sum = 0;
    for (const Cell& c : cells_) sum += c.v.load(std::memory_order_relaxed);
    return sum;
  }

 private:
  struct alignas(kCacheLine) Cell {
    std::atomic<std::uint64_t> v{0};
  };
  std::array<Cell, kOwned + 1> cells_{};
};

}  // namespace larder::internal

#endif  // LARDER_INTERNAL_THREAD_COUNTER_H_
