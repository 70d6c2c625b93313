// SPDX-License-Identifier: Apache-2.0
//
// EvictionPolicyCore: the replacement policy of one LocalStore shard. It orders
// intrusive entries (PolicyHook) and says which to evict when the shard is over
// its bound: exact LRU, W-TinyLFU with a fixed 1% window, or W-TinyLFU whose
// window adapts by hill climbing (the default).
//
// Design essay.
//
//   W-TinyLFU (Einziger, Friedman, Manes, "TinyLFU: A Highly Efficient Cache
//   Admission Policy", ACM ToS 2017) splits the capacity in three LRU queues:
//
//     new entry --> [ window LRU ] --overflow--> candidate
//                                                  |  admit if freq(candidate)
//                                                  v      > freq(victim)
//        [ probation LRU ] <--demote-- [ protected LRU ]     (main: SLRU)
//          ^ victim = LRU end   \--hit promotes-->/
//
//   A new entry enters the window. When the window overflows, its LRU entries
//   become candidates for the main region; when the whole store is over its
//   bound, the candidate meets the probation queue's LRU victim and the one
//   the frequency sketch (frequency_sketch.h) has seen less often recently is
//   evicted. A one-hit wonder or a scan therefore passes through the small
//   window and out, and the frequently used set in main survives it. Hits in
//   probation promote to protected (at most 80% of main); protected overflow
//   demotes back to probation.
//
//   The window size decides the balance between recency and frequency: 1% is
//   best for frequency-skewed traces (search, databases) and poor for
//   recency-skewed ones (loops of recently used data, "corda" traces), where
//   plain LRU wins. kAdaptiveTinyLfu hill-climbs the window size (Einziger et
//   al., "Adaptive Software Cache Management", Middleware 2018, as in Caffeine
//   since 2.7): every sample period (sample_factor x capacity accesses) it
//   compares the hit ratio with the previous period, keeps moving the window
//   in the same direction while the hit ratio improves and turns around when
//   it worsens; the step restarts large after a big change in hit ratio and
//   decays otherwise, so it settles.
//
//   kLru is one exact LRU queue, for users who want it and as the baseline.
//
// Invariants (checked by tests): every hooked entry is in exactly one queue
// and its `queue` field names it; the per-queue weights sum to weighted_size();
// after evict() returns, weighted_size() <= maximum().
//
// Complexity: on_insert / on_access / on_remove are O(1); evict() is O(number
// evicted); climbing moves at most kTransferLimit entries per call.
//
// Thread-safety: none; a LocalStore shard guards it with its lock.
//
// Example:
//   EvictionPolicyCore p(PolicyKind::kAdaptiveTinyLfu, /*maximum=*/100, 100);
//   p.on_insert(&node);           // node.hash and node.weight set by the caller
//   p.evict([](PolicyHook* victim) { /* unlinked: free it */ });
#ifndef LARDER_INTERNAL_EVICTION_POLICY_H_
#define LARDER_INTERNAL_EVICTION_POLICY_H_

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "larder/internal/frequency_sketch.h"
#include "larder/internal/policy_hook.h"

namespace larder::internal {

enum class PolicyKind : std::uint8_t { kAdaptiveTinyLfu, kTinyLfu, kLru };

class EvictionPolicyCore {
 public:
  static constexpr double kPercentMain = 0.99;
  static constexpr double kPercentMainProtected = 0.80;
  static constexpr double kStepPercent = 0.0625;
  static constexpr double kStepDecay = 0.98;
  static constexpr double kRestartThreshold = 0.05;
  static constexpr int kTransferLimit = 1000;
  static constexpr int kAdmitHashDosThreshold = 6;

  // maximum: the bound in weight units (entries when unweighted).
  // expected_entries: sizes the frequency sketch.
  EvictionPolicyCore(PolicyKind kind, std::uint64_t maximum, std::uint64_t expected_entries)
      : kind_(kind),
        sketch_(kind == PolicyKind::kLru ? 1 : expected_entries) {
    set_maximum(maximum);
  }
  EvictionPolicyCore(const EvictionPolicyCore&) = delete;
  EvictionPolicyCore& operator=(const EvictionPolicyCore&) = delete;

  PolicyKind kind() const { return kind_; }
  std::uint64_t maximum() const { return maximum_; }
  std::uint64_t weighted_size() const { return weighted_size_; }
  std::uint64_t window_maximum() const { return window_max_; }
  std::uint64_t protected_maximum() const { return protected_max_; }
  std::uint64_t window_weighted_size() const { return window_weight_; }
  std::uint64_t protected_weighted_size() const { return protected_weight_; }

  // sample_factor: the hill climber's sample period, in multiples of maximum().
  void set_sample_factor(double f) { sample_factor_ = f; }

  // on_insert: a new entry (a miss that was filled). Its hash and weight are set.
  void on_insert(PolicyHook* h) {
    weighted_size_ += h->weight;
    if (kind_ == PolicyKind::kLru) {
      h->queue = PolicyQueue::kProbation;
      probation_.push_back(h);
      return;
    }
    sketch_.increment(h->hash);
    ++misses_in_sample_;
    h->queue = PolicyQueue::kWindow;
    window_weight_ += h->weight;
    window_.push_back(h);
  }

  // on_access: a hit on an entry.
  void on_access(PolicyHook* h) {
    if (kind_ == PolicyKind::kLru) {
      probation_.move_to_back(h);
      return;
    }
    sketch_.increment(h->hash);
    ++hits_in_sample_;
    switch (h->queue) {
      case PolicyQueue::kWindow:
        window_.move_to_back(h);
        break;
      case PolicyQueue::kProbation:
        PolicyList::unlink(h);
        h->queue = PolicyQueue::kProtected;
        protected_.push_back(h);
        protected_weight_ += h->weight;
        demote_from_protected();
        break;
      case PolicyQueue::kProtected:
        protected_.move_to_back(h);
        break;
      case PolicyQueue::kNone:
        break;
    }
  }

  // on_update: an entry's value was replaced; its weight becomes new_weight.
  // Counts as an access (Caffeine does the same).
  void on_update(PolicyHook* h, std::uint32_t new_weight) {
    const std::uint32_t old = h->weight;
    h->weight = new_weight;
    weighted_size_ = weighted_size_ - old + new_weight;
    if (h->queue == PolicyQueue::kWindow && kind_ != PolicyKind::kLru) {
      window_weight_ = window_weight_ - old + new_weight;
    } else if (h->queue == PolicyQueue::kProtected) {
      protected_weight_ = protected_weight_ - old + new_weight;
    }
    if (kind_ == PolicyKind::kLru) {
      probation_.move_to_back(h);
      return;
    }
    // An update is an access for recency, but it is not a read hit: the
    // hill climber's sample counts reads only.
    --hits_in_sample_;
    on_access(h);
  }

  // on_remove: an entry leaves (explicit removal, expiry). Unlinks it.
  void on_remove(PolicyHook* h) {
    if (h->queue == PolicyQueue::kNone) return;
    weighted_size_ -= h->weight;
    if (kind_ != PolicyKind::kLru) {
      if (h->queue == PolicyQueue::kWindow) window_weight_ -= h->weight;
      if (h->queue == PolicyQueue::kProtected) protected_weight_ -= h->weight;
    }
    PolicyList::unlink(h);
    h->queue = PolicyQueue::kNone;
  }

  // evict: while over the bound, chooses a victim, unlinks it and calls
  // evicted(hook), which may free it. Then adapts the window (kAdaptiveTinyLfu).
  template <class F>
  void evict(F&& evicted) {
    if (kind_ == PolicyKind::kLru) {
      while (weighted_size_ > maximum_ && !probation_.empty()) {
        PolicyHook* v = probation_.front();
        on_remove(v);
        evicted(v);
      }
      return;
    }
    const int candidates = evict_from_window();
    evict_from_main(candidates, evicted);
    if (kind_ == PolicyKind::kAdaptiveTinyLfu) climb();
  }

 private:
  void set_maximum(std::uint64_t maximum) {
    maximum_ = maximum;
    if (kind_ == PolicyKind::kLru) return;
    const auto main = static_cast<std::uint64_t>(kPercentMain * static_cast<double>(maximum));
    window_max_ = maximum - main;
    protected_max_ = static_cast<std::uint64_t>(kPercentMainProtected * static_cast<double>(main));
    step_size_ = -kStepPercent * static_cast<double>(maximum);
  }

  void demote_from_protected() {
    while (protected_weight_ > protected_max_) {
      PolicyHook* h = protected_.front();
      if (h == nullptr) break;
      PolicyList::unlink(h);
      protected_weight_ -= h->weight;
      h->queue = PolicyQueue::kProbation;
      probation_.push_back(h);
    }
  }

  int evict_from_window() {
    int candidates = 0;
    while (window_weight_ > window_max_) {
      PolicyHook* h = window_.front();
      if (h == nullptr) break;
      PolicyList::unlink(h);
      window_weight_ -= h->weight;
      h->queue = PolicyQueue::kProbation;
      probation_.push_back(h);
      ++candidates;
    }
    return candidates;
  }

  bool admit(const PolicyHook* candidate, const PolicyHook* victim) {
    const int victim_freq = sketch_.frequency(victim->hash);
    const int candidate_freq = sketch_.frequency(candidate->hash);
    if (candidate_freq > victim_freq) return true;
    if (candidate_freq >= kAdmitHashDosThreshold) {
      // A small random admission stops an attacker from pinning a victim
      // with an artificially high frequency (Caffeine's HashDoS defence).
      rng_ ^= rng_ << 13;
      rng_ ^= rng_ >> 7;
      rng_ ^= rng_ << 17;
      return (rng_ & 127) == 0;
    }
    return false;
  }

  PolicyList& list_of(PolicyQueue q) {
    switch (q) {
      case PolicyQueue::kWindow:
        return window_;
      case PolicyQueue::kProtected:
        return protected_;
      default:
        return probation_;
    }
  }

  template <class F>
  void evict_from_main(int candidates, F& evicted) {
    PolicyQueue victim_q = PolicyQueue::kProbation;
    PolicyQueue candidate_q = PolicyQueue::kProbation;
    PolicyHook* victim = probation_.front();
    PolicyHook* candidate = probation_.back();
    // Advances the candidate: through the probation queue from the MRU end
    // (the entries just moved out of the window), then the window from its
    // LRU end.
    auto advance = [&](PolicyHook* c) {
      return candidate_q == PolicyQueue::kProbation ? probation_.prev_of(c) : window_.next_of(c);
    };
    auto drop = [&](PolicyHook* h) {
      on_remove(h);
      evicted(h);
    };
    while (weighted_size_ > maximum_) {
      if (candidates <= 0 && candidate_q == PolicyQueue::kProbation) {
        candidate = window_.front();
        candidate_q = PolicyQueue::kWindow;
      }
      if (candidate == nullptr && victim == nullptr) {
        if (victim_q == PolicyQueue::kProbation) {
          victim = protected_.front();
          victim_q = PolicyQueue::kProtected;
          continue;
        }
        if (victim_q == PolicyQueue::kProtected) {
          victim = window_.front();
          victim_q = PolicyQueue::kWindow;
          continue;
        }
        break;
      }
      if (victim == nullptr) {
        PolicyHook* next = advance(candidate);
        --candidates;
        drop(candidate);
        candidate = next;
        continue;
      }
      if (candidate == nullptr) {
        PolicyHook* next = list_of(victim_q).next_of(victim);
        drop(victim);
        victim = next;
        continue;
      }
      if (candidate == victim) {
        PolicyHook* next = list_of(victim_q).next_of(victim);
        drop(victim);
        victim = next;
        candidate = nullptr;
        continue;
      }
      --candidates;
      if (admit(candidate, victim)) {
        PolicyHook* next = list_of(victim_q).next_of(victim);
        candidate = advance(candidate);
        // The two walks met: no candidates are left in front of the victim.
        if (candidate == victim) candidate = nullptr;
        drop(victim);
        victim = next;
      } else {
        PolicyHook* next = advance(candidate);
        drop(candidate);
        candidate = next;
      }
    }
  }

  void determine_adjustment() {
    const std::uint64_t requests = hits_in_sample_ + misses_in_sample_;
    const double sample =
        std::max(1.0, sample_factor_ * static_cast<double>(maximum_));
    if (static_cast<double>(requests) < sample) return;
    const double hit_rate =
        static_cast<double>(hits_in_sample_) / static_cast<double>(requests);
    const double change = hit_rate - previous_hit_rate_;
    double amount = change >= 0 ? step_size_ : -step_size_;
    if (std::abs(change) < dead_band_ && step_size_ != 0) {
      // On a plateau keep moving, at least at the initial step, in the same
      // direction: the hit rate often does not respond until the window
      // crosses a reuse distance, and noise would otherwise turn it around.
      step_size_ = (step_size_ >= 0 ? 1 : -1) *
                   std::max(std::abs(step_size_), plateau_step_ * static_cast<double>(maximum_));
      amount = step_size_;
    }
    const double next_step =
        std::abs(change) >= kRestartThreshold
            ? kStepPercent * static_cast<double>(maximum_) * (amount >= 0 ? 1 : -1)
            : kStepDecay * amount;
    previous_hit_rate_ = hit_rate;
    adjustment_ = static_cast<std::int64_t>(amount);
    step_size_ = next_step;
    hits_in_sample_ = 0;
    misses_in_sample_ = 0;
  }

  void climb() {
    determine_adjustment();
    demote_from_protected();
    if (adjustment_ > 0) {
      increase_window();
    } else if (adjustment_ < 0) {
      decrease_window();
    }
  }

  void increase_window() {
    // The window may grow until main is a single entry: on recency-skewed
    // traces (loops over a recent working set) plain LRU is optimal.
    if (window_max_ + 1 >= maximum_) return;
    std::uint64_t quota = std::min<std::uint64_t>(static_cast<std::uint64_t>(adjustment_),
                                                  maximum_ - 1 - window_max_);
    const std::uint64_t from_protected = std::min(quota, protected_max_);
    protected_max_ -= from_protected;
    window_max_ += quota;
    demote_from_protected();
    for (int i = 0; i < kTransferLimit; ++i) {
      PolicyHook* c = probation_.front();
      bool from_probation = true;
      if (c == nullptr || quota < c->weight) {
        c = protected_.front();
        from_probation = false;
      }
      if (c == nullptr || quota < c->weight) break;
      quota -= c->weight;
      PolicyList::unlink(c);
      if (!from_probation) protected_weight_ -= c->weight;
      window_weight_ += c->weight;
      c->queue = PolicyQueue::kWindow;
      window_.push_back(c);
    }
    // Return the quota that could not be moved.
    const std::uint64_t back = std::min(quota, from_protected);
    protected_max_ += back;
    window_max_ -= quota;
    adjustment_ = static_cast<std::int64_t>(quota);
  }

  void decrease_window() {
    if (window_max_ <= 1) return;
    std::uint64_t quota = std::min<std::uint64_t>(static_cast<std::uint64_t>(-adjustment_),
                                                  window_max_ - 1);
    const std::uint64_t protected_cap = static_cast<std::uint64_t>(
        kPercentMainProtected * static_cast<double>(maximum_ - (window_max_ - quota)));
    const std::uint64_t to_protected =
        std::min(quota, protected_cap > protected_max_ ? protected_cap - protected_max_ : 0);
    protected_max_ += to_protected;
    window_max_ -= quota;
    for (int i = 0; i < kTransferLimit; ++i) {
      PolicyHook* c = window_.front();
      if (c == nullptr || quota < c->weight) break;
      quota -= c->weight;
      PolicyList::unlink(c);
      window_weight_ -= c->weight;
      c->queue = PolicyQueue::kProbation;
      probation_.push_back(c);
    }
    protected_max_ -= std::min(quota, to_protected);
    window_max_ += quota;
    adjustment_ = -static_cast<std::int64_t>(quota);
  }

  PolicyKind kind_;
  FrequencySketch sketch_;
  PolicyList window_, probation_, protected_;
  std::uint64_t maximum_ = 0;
  std::uint64_t weighted_size_ = 0;
  std::uint64_t window_max_ = 0, protected_max_ = 0;
  std::uint64_t window_weight_ = 0, protected_weight_ = 0;
  // Hill climber.
  double sample_factor_ = 10.0;
  // A hit-rate change smaller than this is a plateau (see determine_adjustment).
  double dead_band_ = 0.002;
  double plateau_step_ = kStepPercent;
  std::uint64_t hits_in_sample_ = 0, misses_in_sample_ = 0;
  double previous_hit_rate_ = 0;
  double step_size_ = 0;
  std::int64_t adjustment_ = 0;
  std::uint64_t rng_ = 0x9e3779b97f4a7c15ull;
};

}  // namespace larder::internal

#endif  // LARDER_INTERNAL_EVICTION_POLICY_H_
