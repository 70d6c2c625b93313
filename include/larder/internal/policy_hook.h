// SPDX-License-Identifier: Apache-2.0
//
// PolicyHook and PolicyList: the intrusive links by which an eviction policy
// (eviction_policy.h) orders a LocalStore shard's entries.
//
// Kept apart from the policy's algorithm so that the entry layout (memory per
// entry, local_store.h) and the replacement algorithm (hit ratio,
// eviction_policy.h) can change independently.
//
// Thread-safety: none; a LocalStore shard guards its lists with its lock.
#ifndef LARDER_INTERNAL_POLICY_HOOK_H_
#define LARDER_INTERNAL_POLICY_HOOK_H_

#include <cstdint>

namespace larder::internal {

enum class PolicyQueue : std::uint8_t { kNone, kWindow, kProbation, kProtected };

// PolicyHook: the fields an entry embeds to be ordered by the policy.
struct PolicyHook {
  PolicyHook* prev = nullptr;
  PolicyHook* next = nullptr;
  std::uint64_t hash = 0;         // the key's hash, for the frequency sketch
  std::uint32_t weight = 1;
  PolicyQueue queue = PolicyQueue::kNone;
};

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

 private:
  PolicyHook head_;
};

}  // namespace larder::internal

#endif  // LARDER_INTERNAL_POLICY_HOOK_H_
