// SPDX-License-Identifier: Apache-2.0
//
// KeyTurns<K>: per-key FIFO turns. acquire(k) returns a Turn; turns of the
// same key are granted one at a time, in the order acquire() was called;
// turns of different keys never wait for each other (except for a short
// critical section on a shared stripe).
//
// Cache<K, V> takes a key's turn around a write: write-through holds it
// across Writer::write and the store update, write-back across
// WriteBack::put and the store update. Two puts of one key can then never
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
// lock around user code (larder never holds a lock around user code).
//
// Thread-safety: acquire() may be called from any thread; a Turn is released
// by its destructor, on the thread holding it. Re-entering acquire() for a key
// whose turn this thread already holds would wait for itself forever, so it
// returns nullopt at once instead (Cache turns that into an error for a Writer
// that calls Cache::put/erase for the key it is writing). Only the holder's
// own re-entry is caught: two threads each holding one key and waiting for
// the other's still deadlock (a Writer writing other keys through the same
// cache must not do that).
//
// Cost: uncontended, one stripe lock, one hash-map insert and one erase per
// turn, one copy of K.
//
// Example:
//
//   KeyTurns<std::string> turns;
//   {
//     auto t = turns.acquire("k");   // waits for earlier turns of "k"; nullopt
//                                    // if this thread holds "k"'s turn already
//     write_somewhere("k");
//   }                                // the next turn of "k" may go
#ifndef LARDER_INTERNAL_KEY_TURNS_H_
#define LARDER_INTERNAL_KEY_TURNS_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <thread>
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
  // nullopt, without waiting, when the calling thread holds key's turn itself.
  [[nodiscard]] std::optional<Turn> acquire(const K& key) {
    Stripe& s = stripes_[Hash{}(key) % kStripes];
    const std::thread::id me = std::this_thread::get_id();
    MutexLock l(&s.mu);
    Slot* slot = &s.map[key];
    if (slot->serving != slot->next && slot->holder == me) return std::nullopt;
    const std::uint64_t ticket = slot->next++;
    if (slot->serving != ticket) {
      ++s.waiters;
      // Re-find on each wake-up: inserts of other keys may rehash the map.
      s.cv.wait(l, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu) {
        return s.map.find(key)->second.serving == ticket;
      });
      --s.waiters;
      slot = &s.map.find(key)->second;
    }
    slot->holder = me;
    return Turn(&s, key);
  }

  // queued: turns of key held or awaited now (the holder's included). For
  // tests: a waiter counts from the moment it took its ticket.
  std::size_t queued(const K& key) const {
    const Stripe& s = stripes_[Hash{}(key) % kStripes];
    MutexLock l(&s.mu);
    auto it = s.map.find(key);
    return it == s.map.end() ? 0 : static_cast<std::size_t>(it->second.next - it->second.serving);
  }

 private:
  struct Slot {
    std::uint64_t next = 0;     // the ticket the next acquire() gets
    std::uint64_t serving = 0;  // the ticket that holds the turn
    std::thread::id holder;     // the thread holding it (none between turns)
  };
  struct alignas(kCacheLine) Stripe {
    mutable Mutex mu;
    CondVar cv;
    absl::flat_hash_map<K, Slot, Hash, Eq> map
        ABSL_GUARDED_BY(mu);  // keys with turns held or awaited
    std::size_t waiters ABSL_GUARDED_BY(mu) = 0;
  };

  static void release(Stripe& s, const K& key) {
    bool wake = false;
    {
      MutexLock l(&s.mu);
      auto it = s.map.find(key);
      it->second.holder = std::thread::id();
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
