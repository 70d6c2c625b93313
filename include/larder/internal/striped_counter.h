// SPDX-License-Identifier: Apache-2.0
//
// StripedCounter: a monotonic counter that many threads bump without sharing
// a cache line.
//
// Design: kStripes cache-line-sized cells; a thread picks its cell once (a
// thread-local index handed out round-robin) and adds to it with a relaxed
// fetch_add. Reading sums all cells, so reads are O(kStripes) and writes O(1)
// and contention-free as long as threads <= kStripes. This is the
// LongAdder/Striped64 idea without its dynamic growth: larder's counters are
// bumped on the hit path, where a single shared atomic would bounce one line
// between every core (no shared counter on the hit path).
//
// Thread-safety: add() and load() may run concurrently; load() is a sum of
// relaxed reads, exact once writers are quiet.
#ifndef LARDER_INTERNAL_STRIPED_COUNTER_H_
#define LARDER_INTERNAL_STRIPED_COUNTER_H_

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

namespace larder::internal {

inline constexpr std::size_t kCacheLine = 64;

// This thread's stripe index, assigned round-robin at first use.
inline std::size_t thread_stripe() {
  static std::atomic<std::size_t> next{0};
  thread_local const std::size_t index = next.fetch_add(1, std::memory_order_relaxed);
  return index;
}

class StripedCounter {
 public:
  static constexpr std::size_t kStripes = 16;

  void add(std::uint64_t n = 1) {
    cells_[thread_stripe() % kStripes].v.fetch_add(n, std::memory_order_relaxed);
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
  std::array<Cell, kStripes> cells_{};
};

}  // namespace larder::internal

#endif  // LARDER_INTERNAL_STRIPED_COUNTER_H_
