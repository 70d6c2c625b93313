// SPDX-License-Identifier: Apache-2.0
//
// FrequencySketch: a count-min sketch of 4-bit counters that estimates how often
// each key was seen recently, for TinyLFU admission (LocalStore's eviction policy).
//
// Design. The table is 2^k 64-bit words, each holding sixteen 4-bit counters.
// A key's 32-bit hash selects one counter in each of four words (four seeded
// multiply-shift hashes pick the words; two bits of the spread hash pick which
// group of four counters inside the word, and the row number picks the counter
// in the group). increment() bumps all four unless saturated at 15; frequency()
// is their minimum. After sample_size increments (10x the expected entry count)
// every counter is halved ("aging", the reset of Einziger, Friedman and Manes,
// "TinyLFU: A Highly Efficient Cache Admission Policy", 2017), so the sketch
// tracks the recent past and old popularity fades.
//
// Why not an exact counter per key: it costs a hash map entry per key ever seen
// (including keys that are no longer cached), while the sketch is 8 bytes per
// expected entry and error-bounded. Four bits suffice because admission only
// compares a candidate against a victim, and halving keeps counts small.
// The layout follows Caffeine's FrequencySketch (Ben Manes), written anew.
//
// Thread-safety: none; the owner (a LocalStore shard) guards it with its lock.
//
// Example:
//   larder::internal::FrequencySketch s(1000);
//   s.increment(h);  s.increment(h);
//   int f = s.frequency(h);   // 2
#ifndef LARDER_INTERNAL_FREQUENCY_SKETCH_H_
#define LARDER_INTERNAL_FREQUENCY_SKETCH_H_

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace larder::internal {

class FrequencySketch {
 public:
  // expected_entries sizes the table (next power of two, at least 8 words) and
  // the aging period (10x expected_entries increments).
  explicit FrequencySketch(std::uint64_t expected_entries) {
    const std::uint64_t n = std::max<std::uint64_t>(expected_entries, 8);
    table_.assign(std::bit_ceil(n), 0);
    mask_ = table_.size() - 1;
    sample_size_ = 10 * std::max<std::uint64_t>(expected_entries, 1);
  }

  // increment: counts one more occurrence of the key with this hash. O(1).
  void increment(std::uint64_t key_hash) {
    const std::uint32_t h = spread(key_hash);
    const unsigned start = (h & 3u) << 2;
    bool added = false;
    for (unsigned i = 0; i < 4; ++i) {
      added |= increment_at(index_of(h, i), start + i);
    }
    if (added && ++size_ >= sample_size_) reset();
  }

  // frequency: the estimated recent count of the key, 0..15. O(1).
  int frequency(std::uint64_t key_hash) const {
    const std::uint32_t h = spread(key_hash);
    const unsigned start = (h & 3u) << 2;
    int freq = 15;
    for (unsigned i = 0; i < 4; ++i) {
      const unsigned shift = (start + i) << 2;
      const int c = static_cast<int>((table_[index_of(h, i)] >> shift) & 0xfu);
      freq = std::min(freq, c);
    }
    return freq;
  }

  // reset: halves every counter (aging). Called automatically.
  void reset() {
    std::uint64_t odd = 0;
    for (std::uint64_t& w : table_) {
      odd += static_cast<std::uint64_t>(std::popcount(w & kOneMask));
      w = (w >> 1) & kResetMask;
    }
    size_ = (size_ >> 1) - (odd >> 2);
  }

  std::uint64_t sample_size() const { return sample_size_; }
  std::size_t table_words() const { return table_.size(); }

 private:
  static constexpr std::uint64_t kResetMask = 0x7777777777777777ull;
  static constexpr std::uint64_t kOneMask = 0x1111111111111111ull;
  static constexpr std::uint64_t kSeeds[4] = {0xc3a5c85c97cb3127ull, 0xb492b66fbe98f273ull,
                                              0x9ae16a3b2f90404full, 0xcbf29ce484222325ull};

  static std::uint32_t spread(std::uint64_t key_hash) {
    std::uint32_t x = static_cast<std::uint32_t>(key_hash ^ (key_hash >> 32));
    x = ((x >> 16) ^ x) * 0x45d9f3bu;
    x = ((x >> 16) ^ x) * 0x45d9f3bu;
    return (x >> 16) ^ x;
  }
  std::size_t index_of(std::uint32_t h, unsigned i) const {
    std::uint64_t x = (static_cast<std::uint64_t>(h) + kSeeds[i]) * kSeeds[i];
    x += x >> 32;
    return static_cast<std::size_t>(x & mask_);
  }
  bool increment_at(std::size_t i, unsigned j) {
    const unsigned offset = j << 2;
    const std::uint64_t mask = 0xfull << offset;
    if ((table_[i] & mask) != mask) {
      table_[i] += 1ull << offset;
      return true;
    }
    return false;
  }

  std::vector<std::uint64_t> table_;
  std::uint64_t mask_ = 0;
  std::uint64_t sample_size_ = 0;
  std::uint64_t size_ = 0;
};

}  // namespace larder::internal

#endif  // LARDER_INTERNAL_FREQUENCY_SKETCH_H_
