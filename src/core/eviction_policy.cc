// SPDX-License-Identifier: Apache-2.0
//
// ShadowPolicies (internal/eviction_policy.h has the design): the adaptive
// policy's miniature simulations work on hashes and slot ids only, so they
// are compiled once here. The per-access filter (sampled) stays inline.
#include "larder/internal/eviction_policy.h"

#include <algorithm>
#include <cmath>

namespace larder::internal {

ShadowPolicies::ShadowPolicies(std::uint64_t maximum, std::uint64_t expected_entries) {
  const std::uint64_t expected = std::max<std::uint64_t>(expected_entries, 1);
  const double rate =
      std::min(1.0, static_cast<double>(kShadowEntries) / static_cast<double>(expected));
  threshold_ = rate >= 1.0 ? (1ull << 32) : static_cast<std::uint64_t>(rate * 4294967296.0);
  const std::uint64_t shadow_max = std::max<std::uint64_t>(
      1, static_cast<std::uint64_t>(std::llround(rate * static_cast<double>(maximum))));
  const std::uint64_t shadow_expected = std::max<std::uint64_t>(
      1, static_cast<std::uint64_t>(std::llround(rate * static_cast<double>(expected))));
  period_base_ = static_cast<double>(shadow_expected);
  sampled_ = rate < 1.0;
  sketch_ = FrequencySketch(shadow_expected);
  for (std::size_t i = 0; i < kFractions.size(); ++i) {
    shadows_[i] = std::make_unique<Shadow>(shadow_max, kFractions[i]);
    if (kFractions[i] == EvictionPolicyCore::kWindowFraction) current_ = i;
  }
}

void ShadowPolicies::access(std::uint64_t hash, std::uint32_t weight, bool read) {
  const auto key = static_cast<std::uint32_t>(hash);
  auto [it, inserted] = index_.try_emplace(key, 0);
  if (inserted) it->second = allocate();
  const std::uint32_t id = it->second;
  Slot& slot = slots_[id];
  // The shift detector's count: the key's first read this tick, and whether
  // the sketch had seen it (read before this access's increment).
  if (read && sampled_ && slot.tick_read != tick_) {
    slot.tick_read = tick_;
    ++keys_read_;
    if (sketch_.frequency(key) == 0) ++fresh_;
  }
  sketch_.increment(key);
  current_slot_ = id;
  for (std::size_t i = 0; i < kFractions.size(); ++i) {
    Shadow& s = *shadows_[i];
    PolicyHook* n = &slot.hooks[i];
    if (n->queue != PolicyQueue::kNone) {
      if (read) s.hits += 1;
      s.policy.shadow_hit(n, weight);
      continue;
    }
    n->hash = key;
    n->weight = weight;
    s.policy.shadow_insert(n);
    auto drop = [this, i](PolicyHook* v) { evicted(v, i); };
    s.policy.evict_tinylfu(sketch_, drop);
  }
  current_slot_ = kNoSlot;
  if (empty(slot)) release(key, id);
  if (read && static_cast<double>(++requests_) * kTicks >= kPeriodFactor * period_base_) decide();
}

void ShadowPolicies::remove(std::uint64_t hash) {
  const auto key = static_cast<std::uint32_t>(hash);
  auto it = index_.find(key);
  if (it == index_.end()) return;
  const std::uint32_t id = it->second;
  Slot& slot = slots_[id];
  for (std::size_t i = 0; i < kFractions.size(); ++i) {
    if (slot.hooks[i].queue != PolicyQueue::kNone) shadows_[i]->policy.on_remove(&slot.hooks[i]);
  }
  release(key, id);
}

std::uint32_t ShadowPolicies::allocate() {
  if (!free_.empty()) {
    const std::uint32_t id = free_.back();
    free_.pop_back();
    slots_[id].tick_read = 0;
    return id;
  }
  slots_.emplace_back();
  return static_cast<std::uint32_t>(slots_.size() - 1);
}

void ShadowPolicies::evicted(PolicyHook* v, std::size_t i) {
  const auto* slot =
      reinterpret_cast<const Slot*>(reinterpret_cast<const char*>(v - i) - offsetof(Slot, hooks));
  if (!empty(*slot)) return;
  auto it = index_.find(v->hash);
  if (it == index_.end() || it->second == current_slot_) return;
  release(v->hash, it->second);
}

void ShadowPolicies::decide() {
  const double decay = std::pow(kDecay, 1.0 / kTicks);
  for (auto& s : shadows_) {
    s->score = s->score * decay + s->hits;
    s->hits = 0;
  }
  total_ = total_ * decay + static_cast<double>(requests_);
  if (sampled_) detect_shift(decay);
  const double reads = static_cast<double>(requests_);  // this tick's sampled reads
  requests_ = 0;
  if (sampled_ && !parted_) cold_start();
  // In the period after a shift (after_shift_ ticks) a lead is tried for
  // one tick only, and whichever shadow leads at its end is adopted.
  const bool quick = after_shift_ > 0;
  if (quick) --after_shift_;
  // Ties go to the larger window: shadows tie when every window from some
  // size up holds the reused keys (a recency burst), and stepping up one
  // grid point per tick pays for a move each time (lirs-backf at 500 went
  // 1% -> 5% -> 20% -> 45% -> 75% -> 100% in 400 requests).
  std::size_t best = current_;
  for (std::size_t i = 0; i < kFractions.size(); ++i) {
    if (shadows_[i]->score >= shadows_[best]->score) best = i;
  }
  const bool leads = leads_current(best);
  // A lead opens a trial; the window moves only if the lead still holds
  // trial_ticks() ticks later (see kTrialTicks).
  if (trial_ == kNoTrial) {
    if (leads) {
      trial_ = best;
      trial_ticks_ = 0;
      short_trial_ =
          first_trial_ && shadows_[best]->score - shadows_[current_]->score <= kBurstLead * reads;
      first_trial_ = false;
    }
    return;
  }
  if (++trial_ticks_ < (quick || short_trial_ ? 1 : trial_ticks())) return;
  if (best == trial_ || quick) {
    if (leads) current_ = best;
  } else if (sampled_ && leads_current(trial_)) {
    // Sampled shadows: the shadow on trial still leads by its margin, but a
    // neighbour (its scores within noise of it) leads it now. The lead held:
    // move, to the leader if it leads by its own margin.
    current_ = leads ? best : trial_;
  }
  trial_ = kNoTrial;
}

void ShadowPolicies::cold_start() {
  const double score = shadows_[0]->score;
  for (const auto& s : shadows_) {
    if (s->score != score) {
      parted_ = true;
      first_trial_ = true;
      return;
    }
  }
  // Still filling: the tie says nothing, and its requests would only raise
  // the margin (kMargin x total_) the first lead has to beat.
  for (auto& s : shadows_) s->score = 0;
  total_ = 0;
}

bool ShadowPolicies::leads_current(std::size_t i) const {
  if (i == current_) return false;
  const double distance = std::abs(kFractions[i] - kFractions[current_]);
  const double margin = kMargin * total_ * (1 + kDistanceWeight * distance) + kMinLead;
  return shadows_[i]->score > shadows_[current_]->score + margin;
}

void ShadowPolicies::detect_shift(double decay) {
  const double share =
      static_cast<double>(fresh_) / static_cast<double>(std::max<std::uint64_t>(keys_read_, 1));
  fresh_ = 0;
  keys_read_ = 0;
  ++tick_;
  const bool warm = fresh_history_ >= kShiftHistoryTicks;
  if (warm && share > fresh_mean_num_ / fresh_mean_den_ + kShiftExcess) {
    ++fresh_above_;
  } else {
    fresh_above_ = 0;
  }
  fresh_mean_num_ = fresh_mean_num_ * decay + share;
  fresh_mean_den_ = fresh_mean_den_ * decay + 1;
  ++fresh_history_;
  if (fresh_above_ < kShiftTicks) return;
  // A shift: what the shadows learnt of the old set no longer predicts the
  // new one. Restart their scores, age their sketch, and let the next lead
  // move the window after one tick.
  for (auto& s : shadows_) {
    s->score = 0;
    s->hits = 0;
  }
  total_ = 0;
  sketch_.reset();
  trial_ = kNoTrial;
  after_shift_ = static_cast<int>(kTicks);
  fresh_mean_num_ = 0;
  fresh_mean_den_ = 0;
  fresh_history_ = 0;
  fresh_above_ = 0;
  ++shifts_;
}
}  // namespace larder::internal
