// SPDX-License-Identifier: Apache-2.0
//
// FrequencySketch: a count-min sketch of 4-bit counters that estimates how often
// each key was seen recently, for TinyLFU admission (LocalStore's eviction policy).
//
// Design. The table is 2^k 64-bit words, each holding sixteen 4-bit counters
// (line-aligned, in groups of eight words). A key has one counter in each of
// four rows; increment() bumps the four unless saturated at 15, frequency()
// is their minimum. Where the four counters live depends on the table size:
//
//   spread layout (tables under kBlockedFromWords words, 2 MiB): four seeded
//     multiply-shift hashes pick four words anywhere in the table; two bits
//     of the hash pick a group of four counters in the word, the row the
//     counter in the group. Such tables stay in the caches, and this layout
//     gives the hit ratios in bench/results/hit_ratio.txt.
//   block layout (larger tables): the hash picks one 64-byte line; row i
//     takes one of its own two words (2i, 2i + 1) and one of its 16 counters,
//     so the four counters are distinct and an increment or a lookup touches
//     ONE line instead of four. A large store's sketch is far bigger than the
//     caches, and four random misses per recorded access were a large part
//     of the policy's cost (newer Caffeine versions use a line layout for the
//     same reason). Confining a key's counters to one line correlates
//     collisions a little: used for every size it moved the reference
//     points by up to +-2 pp (as many up as down), which is why small tables
//     keep the spread layout.
//
// After sample_size increments (10x the expected entry count) every counter
// is halved ("aging", the reset of Einziger, Friedman and Manes, "TinyLFU: A
// Highly Efficient Cache Admission Policy", 2017), so the sketch tracks the
// recent past and old popularity fades.
//
// Why not an exact counter per key: it costs a hash map entry per key ever seen
// (including keys that are no longer cached), while the sketch is 8 bytes per
// expected entry and error-bounded. Four bits suffice because admission only
// compares a candidate against a victim, and halving keeps counts small.
// The counters and aging follow Caffeine's FrequencySketch (Ben Manes),
// written anew.
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
#include <memory>

namespace larder::internal {

class FrequencySketch {
 public:
  // Tables of at least this many words (2 MiB: more than a core's L2) use
  // the one-line block layout; smaller ones, which stay cached, the spread one.
  static constexpr std::uint64_t kBlockedFromWords = std::uint64_t{1} << 18;

  // expected_entries sizes the table (next power of two, at least 8 words:
  // one line) and the aging period (10x expected_entries increments).
  explicit FrequencySketch(std::uint64_t expected_entries) {
    const std::uint64_t words =
        std::bit_ceil(std::max<std::uint64_t>(expected_entries, kLineWords));
    table_.reset(new Line[words / kLineWords]());
    words_ = words;
    word_mask_ = words - 1;
    line_mask_ = words / kLineWords - 1;
    blocked_ = words >= kBlockedFromWords;
    sample_size_ = 10 * std::max<std::uint64_t>(expected_entries, 1);
  }

  // increment: counts one more occurrence of the key with this hash. O(1).
  void increment(std::uint64_t key_hash) {
    const std::uint64_t h = spread(key_hash);
    bool added = false;
    for (unsigned i = 0; i < 4; ++i) {
      const Counter c = counter(h, i);
      std::uint64_t& w = word(c.word);
      if (((w >> c.shift) & 0xfu) != 0xfu) {
        w += std::uint64_t{1} << c.shift;
        added = true;
      }
    }
    if (added && ++size_ >= sample_size_) reset();
  }

  // frequency: the estimated recent count of the key, 0..15. O(1).
  int frequency(std::uint64_t key_hash) const {
    const std::uint64_t h = spread(key_hash);
    int freq = 15;
    for (unsigned i = 0; i < 4; ++i) {
      const Counter c = counter(h, i);
      freq = std::min(freq, static_cast<int>((word(c.word) >> c.shift) & 0xfu));
    }
    return freq;
  }

  // prefetch: starts loading the key's counters (one line in the block
  // layout, four words in the spread one), so a batch of accesses, or a
  // write before it takes its lock, overlaps their cache misses.
  void prefetch(std::uint64_t key_hash) const {
    const std::uint64_t h = spread(key_hash);
    if (blocked_) {
      __builtin_prefetch(&table_[line_of(h)], 1);
      return;
    }
    for (unsigned i = 0; i < 4; ++i) __builtin_prefetch(&word(counter(h, i).word), 1);
  }

  // reset: halves every counter (aging). Called automatically.
  void reset() {
    std::uint64_t odd = 0;
    for (std::uint64_t i = 0; i < words_; ++i) {
      std::uint64_t& w = word(i);
      odd += static_cast<std::uint64_t>(std::popcount(w & kOneMask));
      w = (w >> 1) & kResetMask;
    }
    size_ = (size_ >> 1) - (odd >> 2);
  }

  std::uint64_t sample_size() const { return sample_size_; }
  std::size_t table_words() const { return static_cast<std::size_t>(words_); }
  bool blocked() const { return blocked_; }

 private:
  static constexpr std::uint64_t kLineWords = 8;
  static constexpr std::uint64_t kResetMask = 0x7777777777777777ull;
  static constexpr std::uint64_t kOneMask = 0x1111111111111111ull;
  static constexpr std::uint64_t kSeeds[4] = {0xc3a5c85c97cb3127ull, 0xb492b66fbe98f273ull,
                                              0x9ae16a3b2f90404full, 0xcbf29ce484222325ull};

  struct alignas(64) Line {
    std::uint64_t w[kLineWords];
  };
  struct Counter {
    std::uint64_t word;  // index into the table's words
    unsigned shift;      // bit offset of the 4-bit counter in it
  };

  std::uint64_t& word(std::uint64_t i) { return table_[i / kLineWords].w[i % kLineWords]; }
  const std::uint64_t& word(std::uint64_t i) const {
    return table_[i / kLineWords].w[i % kLineWords];
  }

  // counter: row i's counter for the spread hash h.
  //   block layout: one line per key (high bits of h); row i takes one of
  //     its own two words (2i, 2i + 1) and one of its 16 counters, from 5
  //     bits of h: four distinct counters in one line.
  //   spread layout: four seeded multiply-shift hashes pick four words over
  //     the whole table; two bits of h pick a group of four counters, the
  //     row the counter in it.
  Counter counter(std::uint64_t h, unsigned i) const {
    if (blocked_) {
      const unsigned bits = static_cast<unsigned>(h >> (8 * i));
      return {line_of(h) * kLineWords + 2 * std::size_t{i} + (bits & 1u), ((bits >> 1) & 15u) << 2};
    }
    const std::uint32_t h32 = static_cast<std::uint32_t>(h);
    std::uint64_t x = (static_cast<std::uint64_t>(h32) + kSeeds[i]) * kSeeds[i];
    x += x >> 32;
    const unsigned start = (h32 & 3u) << 2;
    return {x & word_mask_, (start + i) << 2};
  }
  std::uint64_t line_of(std::uint64_t h) const { return (h >> 32) & line_mask_; }

  // spread: mixes the key's hash. The low 32 bits are the spread layout's
  // hash (as before the block layout existed: its hit ratios are unchanged);
  // the high 32 bits pick the block layout's line.
  static std::uint64_t spread(std::uint64_t key_hash) {
    std::uint32_t x = static_cast<std::uint32_t>(key_hash ^ (key_hash >> 32));
    x = ((x >> 16) ^ x) * 0x45d9f3bu;
    x = ((x >> 16) ^ x) * 0x45d9f3bu;
    x = (x >> 16) ^ x;
    std::uint64_t y = key_hash * 0x9e3779b97f4a7c15ull;
    y ^= y >> 29;
    y *= 0xbf58476d1ce4e5b9ull;
    y ^= y >> 32;
    return (y & 0xffffffff00000000ull) | x;
  }

  std::unique_ptr<Line[]> table_;
  std::uint64_t words_ = 0;
  std::uint64_t word_mask_ = 0;
  std::uint64_t line_mask_ = 0;
  bool blocked_ = false;
  std::uint64_t sample_size_ = 0;
  std::uint64_t size_ = 0;
};

}  // namespace larder::internal

#endif  // LARDER_INTERNAL_FREQUENCY_SKETCH_H_
