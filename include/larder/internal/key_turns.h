// SPDX-License-Identifier: Apache-2.0
//
// KeyTurns<K>: per-key FIFO turns. acquire(k) returns a Turn; turns of the
// same key are granted one at a time, in the order acquire() was called;
// turns of different keys never wait for each other (except for a short
// critical section on a shared stripe).
//
// Cache<K, V> takes a key's turn around a write: write-through holds it
// across Writer::write and the store update, write-back across
// WriteBehind::put and the store update. Two puts of one key can then never
// reach the system of record in one order and the cache in the other.
//
// How it differs from the obvious alternative, a striped mutex held across
// the write: no mutex is held while the holder of a turn runs user code (the
// Writer). A turn is a ticket (next / serving, as in a ticket lock) kept in a
// small per-stripe map only while someone holds or waits for it; the stripe
// mutex guards that map for a few instructions, and waiters sleep on the
// stripe's condition variable. A slow Writer call for key A therefore delays
// later writes of A (which is the point) but nothing else; a striped mutex
// would also stall every key hashing to A's stripe, and would be a larder
// lock around user code (CONVENTIONS.md forbids that).
//
// Thread-safety: acquire() may be called from any thread; a Turn is released
// by its destructor, on the thread holding it. Re-entering acquire() for a key
// whose turn this thread already holds deadlocks (so a Writer must not call
// Cache::put/erase for the key it is writing).
//
// Cost: uncontended, one stripe lock, one hash-map insert and one erase per
// turn, one copy of K.
//
// Example:
//
//   KeyTurns<std::string> turns;
//   {
//     auto t = turns.acquire("k");   // waits for earlier turns of "k"
//     write_somewhere("k");
//   }                                // the next turn of "k" may go
#ifndef LARDER_INTERNAL_KEY_TURNS_H_
#define LARDER_INTERNAL_KEY_TURNS_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"
#include "larder/internal/mutex.h"
#include "larder/internal/striped_counter.h"

namespace larder::internal {

template <class K, class Hash = absl::Hash<K>, class Eq = std::equal_to<K>>
class KeyTurns {
  struct Stripe;

 public:
  static constexpr std::size_t kStripes = 64;

  // Turn: held from acquire() until destroyed (or moved from).
  class Turn {
   public:
    Turn(Turn&& o) noexcept : stripe_(std::exchange(o.stripe_, nullptr)), key_(std::move(o.key_)) {}
    Turn& operator=(Turn&&) = delete;
    Turn(const Turn&) = delete;
    ~Turn() {
      if (stripe_ != nullptr) KeyTurns::release(*stripe_, key_);
    }

   private:
    friend class KeyTurns;
    Turn(Stripe* stripe, K key) : stripe_(stripe), key_(std::move(key)) {}
    Stripe* stripe_;
    K key_;
  };

  // acquire: waits until every earlier acquire(key) has been released.
  [[nodiscard]] Turn acquire(const K& key) {
    Stripe& s = stripes_[Hash{}(key) % kStripes];
    MutexLock l(&s.mu);
    Slot& slot = s.map[key];
    const std::uint64_t ticket = slot.next++;
    if (slot.serving != ticket) {
      ++s.waiters;
      // Re-find on each wake-up: inserts of other keys may rehash the map.
      s.cv.wait(l, [&] { return s.map.find(key)->second.serving == ticket; });
      --s.waiters;
    }
    return Turn(&s, key);
  }

  // active: keys with a turn held or awaited now (for tests).
  std::size_t active() {
    std::size_t n = 0;
    for (Stripe& s : stripes_) {
      MutexLock l(&s.mu);
      n += s.map.size();
    }
    return n;
  }

 private:
  struct Slot {
    std::uint64_t next = 0;     // the ticket the next acquire() gets
    std::uint64_t serving = 0;  // the ticket that holds the turn
  };
  struct alignas(kCacheLine) Stripe {
    Mutex mu;
    CondVar cv;
    absl::flat_hash_map<K, Slot, Hash, Eq> map;  // keys with turns held or awaited
    std::size_t waiters = 0;
  };

  static void release(Stripe& s, const K& key) {
    bool wake = false;
    {
      MutexLock l(&s.mu);
      auto it = s.map.find(key);
      if (++it->second.serving == it->second.next) {
        s.map.erase(it);  // nobody waits for this key
      } else {
        wake = true;
      }
      wake = wake && s.waiters > 0;
    }
    if (wake) s.cv.notify_all();
  }

  std::array<Stripe, kStripes> stripes_;
};

}  // namespace larder::internal

#endif  // LARDER_INTERNAL_KEY_TURNS_H_
