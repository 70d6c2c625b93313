// SPDX-License-Identifier: Apache-2.0
//
// PolicyHook and PolicyList: the intrusive links by which an eviction policy
// (eviction_policy.h) orders a LocalStore shard's entries.
//
// Kept apart from the policy's algorithm so that the entry layout (memory per
// entry, local_store.h) and the replacement algorithm (hit ratio,
// eviction_policy.h) can change independently.
//
// Layout: 24 bytes (two pointers, a 32-bit hash, and the weight and queue
// packed in 32 bits), part of LocalStore's 64-byte node for u64 keys and
// values. A weight is at most kMaxWeight (2^30 - 1); a caller with a 64-bit
// hash stores fold_hash(h), which keeps every bit's influence (the frequency
// sketch folds the same way, so its counters are unchanged by the narrowing).
//
// Thread-safety: none; a LocalStore shard guards its lists with its lock.
#ifndef LARDER_INTERNAL_POLICY_HOOK_H_
#define LARDER_INTERNAL_POLICY_HOOK_H_

#include <cstdint>

namespace larder::internal {

enum class PolicyQueue : std::uint8_t { kNone, kWindow, kProbation, kProtected };

// fold_hash: a 64-bit hash narrowed to PolicyHook::hash.
inline std::uint32_t fold_hash(std::uint64_t h) {
  return static_cast<std::uint32_t>(h ^ (h >> 32));
}

// PolicyHook: the fields an entry embeds to be ordered by the policy.
struct PolicyHook {
  static constexpr std::uint32_t kMaxWeight = (1u << 30) - 1;
  PolicyHook* prev = nullptr;
  PolicyHook* next = nullptr;
  std::uint32_t hash = 0;  // the key's hash (fold_hash), for the frequency sketch
  std::uint32_t weight : 30 = 1;
  PolicyQueue queue : 2 = PolicyQueue::kNone;
};
static_assert(sizeof(PolicyHook) == 24);

// PolicyList: an intrusive circular doubly linked list with a sentinel.
// front() is the LRU end, back() the MRU end. Not copyable or movable.
class PolicyList {
 public:
  PolicyList() { head_.prev = head_.next = &head_; }
  PolicyList(const PolicyList&) = delete;
  PolicyList& operator=(const PolicyList&) = delete;

  bool empty() const { return head_.next == &head_; }
  PolicyHook* front() { return empty() ? nullptr : head_.next; }
  PolicyHook* back() { return empty() ? nullptr : head_.prev; }
  PolicyHook* next_of(PolicyHook* h) { return h->next == &head_ ? nullptr : h->next; }
  PolicyHook* prev_of(PolicyHook* h) { return h->prev == &head_ ? nullptr : h->prev; }

  void push_back(PolicyHook* h) {
    h->next = &head_;
    h->prev = head_.prev;
    head_.prev->next = h;
    head_.prev = h;
  }
  static void unlink(PolicyHook* h) {
    h->prev->next = h->next;
    h->next->prev = h->prev;
    h->prev = h->next = nullptr;
  }
  void move_to_back(PolicyHook* h) {
    unlink(h);
    push_back(h);
  }
  // transplant: `to` takes `from`'s place (links, hash, weight, queue) in
  // whatever list holds it; `from` is left unlinked with queue kNone. O(1).
  static void transplant(PolicyHook* from, PolicyHook* to) {
    to->hash = from->hash;
    to->weight = from->weight;
    to->queue = from->queue;
    to->prev = from->prev;
    to->next = from->next;
    if (from->next != nullptr) {
      from->prev->next = to;
      from->next->prev = to;
    }
    from->prev = from->next = nullptr;
    from->queue = PolicyQueue::kNone;
  }

 private:
  PolicyHook head_;
};

}  // namespace larder::internal

#endif  // LARDER_INTERNAL_POLICY_HOOK_H_
