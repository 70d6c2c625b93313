// SPDX-License-Identifier: Apache-2.0
//
// Adversarial keys for LocalStore: u64 keys chosen, by someone who knows the
// store's hash function, to collide in one shard's index and frequency sketch.
//
// The attacker's model: the store is keyed with a known Hash (KnownHash, the
// identity, like std::hash<uint64_t> in libstdc++), and the store finalises it
// with internal::mix_hash, which is public and invertible (xorshift 33 is its
// own inverse on 64 bits; an odd multiplier has an inverse mod 2^64). So for
// any target 64-bit hash the attacker computes the key that produces it. Keys
// whose targets share the high half's shard slot and fold_hash(h) land in one
// shard, on one home slot of its index with one tag, and on one set of four
// sketch counters: every probe of that shard's index walks all of them, and
// their frequencies are indistinguishable.
//
// colliding_keys(n, shards) returns n distinct keys colliding that way for a
// store of `shards` shards, under the unseeded mixing; a store that salts its
// hash with a secret (LocalStoreOptions::hash_seed) scatters them again.
#ifndef LARDER_TESTS_TESTING_ADVERSARIAL_KEYS_H_
#define LARDER_TESTS_TESTING_ADVERSARIAL_KEYS_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "larder/local_store.h"

namespace larder::testing {

// KnownHash: the identity, a hash an attacker knows.
struct KnownHash {
  std::size_t operator()(std::uint64_t k) const { return static_cast<std::size_t>(k); }
};

// unmix_hash: the inverse of internal::mix_hash.
inline std::uint64_t unmix_hash(std::uint64_t y) {
  constexpr std::uint64_t kMul = 0xff51afd7ed558ccdull;
  std::uint64_t inv = kMul;  // Newton: each step doubles the correct low bits
  for (int i = 0; i < 6; ++i) inv *= 2 - kMul * inv;
  y ^= y >> 33;
  y *= inv;
  y ^= y >> 33;
  return y;
}

// colliding_keys: n distinct keys whose mixed hashes pick shard 0 of a
// `shards`-shard store and share fold_hash (so one index home, one tag, one
// set of sketch counters). n must be below 2^32 / shards.
inline std::vector<std::uint64_t> colliding_keys(std::size_t n, std::size_t shards,
                                                 std::uint32_t fold = 0x5eed5eedu) {
  std::vector<std::uint64_t> keys;
  keys.reserve(n);
  for (std::uint64_t hi = 0; keys.size() < n; ++hi) {
    if (((hi * shards) >> 32) != 0) break;  // left shard 0
    const std::uint64_t lo = (hi ^ fold) & 0xffffffffull;
    keys.push_back(unmix_hash((hi << 32) | lo));
  }
  return keys;
}

}  // namespace larder::testing

#endif  // LARDER_TESTS_TESTING_ADVERSARIAL_KEYS_H_
