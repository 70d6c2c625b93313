// SPDX-License-Identifier: Apache-2.0
// docs/guides/two-tiers.md: a local tier in front of a shared one, kept coherent by a bus.
#include <larder/larder.h>

#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "guide.h"

using guide::ensure;
using namespace std::chrono_literals;

// snippet:two_tiers:begin
using Tiered = larder::TieredStore<int, std::string>;

// One service instance: its own L1 in front of the shared L2, on the shared bus.
std::shared_ptr<Tiered> instance_store(std::shared_ptr<larder::Store<int, std::string>> shared,
                                       std::shared_ptr<larder::InvalidationBus> bus,
                                       std::shared_ptr<larder::ManualClock> clock) {
  auto l1 = std::make_shared<larder::LocalStore<int, std::string>>(
      larder::LocalStoreOptions{.max_entries = 10'000, .clock = std::move(clock)});
  return std::make_shared<Tiered>(std::move(l1), std::move(shared), std::move(bus),
                                  larder::TieredStoreOptions{.l1_max_ttl = 30s});
}

void two_tiers() {
  auto clock = std::make_shared<larder::ManualClock>();  // time moves only when told
  std::map<int, std::string> rows = {{1, "v1"}};
  int queries = 0;
  auto load = [&](int id) -> absl::StatusOr<std::string> {
    ++queries;
    return rows.at(id);
  };

  // In production: L2 is a RedisStore and the bus a RedisInvalidationBus
  // (make_tiered_cache builds both). Here both are in-process stand-ins.
  auto l2 = std::make_shared<larder::LocalStore<int, std::string>>(
      larder::LocalStoreOptions{.max_entries = 100'000, .clock = clock});
  auto bus = std::make_shared<larder::InProcessInvalidationBus>();
  auto store_a = instance_store(l2, bus, clock), store_b = instance_store(l2, bus, clock);
  larder::Cache<int, std::string> a(store_a, {.ttl = 5min, .loader = load});
  larder::Cache<int, std::string> b(store_b, {.ttl = 5min, .loader = load});

  ensure(a.get(1).value() == "v1" && b.get(1).value() == "v1", "both read v1");
  ensure(queries == 1 && store_b->tiered_counters().l2_hits == 1, "b found a's load in L2");
  ensure(b.get(1).ok() && store_b->tiered_counters().l1_hits == 1, "then in its own L1");

  // A write on instance a: the database, then invalidate. a drops its L1 and
  // L2 copies and tells the bus; b drops its L1 copy.
  rows[1] = "v2";
  ensure(a.invalidate(1).ok(), "invalidated");
  ensure(store_b->tiered_counters().invalidations == 1, "b heard it");
  ensure(b.get(1).value() == "v2" && queries == 2, "b reads the new value, loaded once");
}
// snippet:two_tiers:end

// Loads are fills, not changes: a cold instance loading keys does not empty
// the other instances' L1s.
void loads_are_not_broadcast() {
  auto clock = std::make_shared<larder::ManualClock>();
  auto l2 = std::make_shared<larder::LocalStore<int, std::string>>(
      larder::LocalStoreOptions{.max_entries = 1'000, .clock = clock});
  auto bus = std::make_shared<larder::InProcessInvalidationBus>();
  auto store_a = instance_store(l2, bus, clock), store_b = instance_store(l2, bus, clock);
  auto load = [](int id) -> absl::StatusOr<std::string> { return std::to_string(id); };
  larder::Cache<int, std::string> a(store_a, {.loader = load});
  larder::Cache<int, std::string> b(store_b, {.loader = load});
  (void)b.get(1);
  for (int k = 2; k < 50; ++k) (void)a.get(k);
  ensure(store_b->tiered_counters().invalidations == 0, "a's loads sent b nothing");
  ensure(store_a->tiered_counters().published == 0, "a published nothing");
}

int main() {
  two_tiers();
  loads_are_not_broadcast();
  std::puts("two tiers: ok");
  return 0;
}
