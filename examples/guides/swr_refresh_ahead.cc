// SPDX-License-Identifier: Apache-2.0
// docs/guides/stale-while-revalidate.md: stale-while-revalidate and refresh-ahead.
#include <larder/larder.h>

#include <cstdio>
#include <string>

#include "guide.h"

using guide::ensure;
using namespace std::chrono_literals;

// snippet:swr_refresh_ahead:begin
void stale_while_revalidate() {
  auto clock = std::make_shared<larder::ManualClock>();  // time moves only when told
  // Background refreshes run on an Executor; this one runs them when told
  // (run_all), so the example is deterministic. In a service leave .executor out.
  auto background = std::make_shared<guide::StepExecutor>();
  int price = 100, queries = 0;
  auto prices = larder::make_local_cache<std::string, int>(
      {.max_entries = 10'000},
      {.ttl = 60s,
       .stale_while_revalidate = 30s,  // after the ttl: served stale for 30 s while it refreshes
       .loader = [&](const std::string&) -> absl::StatusOr<int> {
         ++queries;
         return price;
       },
       .refresh_ahead = 0.8,  // a hit after 48 s of the 60 s refreshes early
       .clock = clock,
       .executor = background});

  ensure(prices.get("sku-1").value() == 100, "first read loads in the caller");

  // Refresh-ahead: a hit past 80% of the ttl answers at once and refreshes behind.
  price = 110;
  clock->advance(50s);
  ensure(prices.get("sku-1").value() == 100, "still fresh: the cached value, at hit speed");
  ensure(background->run_all() == 1 && queries == 2, "one refresh ran in the background");
  ensure(prices.get("sku-1").value() == 110, "the refreshed value, before the ttl ran out");

  // Stale-while-revalidate: past the ttl, the stale value is served at once.
  price = 120;
  clock->advance(70s);
  ensure(prices.get("sku-1").value() == 110, "stale, served without waiting for the database");
  ensure(prices.get("sku-1").value() == 110, "a second stale read starts no second refresh");
  ensure(background->run_all() == 1 && queries == 3, "one refresh for both reads");
  ensure(prices.get("sku-1").value() == 120, "fresh again");

  // Past ttl + stale_while_revalidate the entry is gone: the caller loads.
  clock->advance(91s);
  ensure(prices.get("sku-1").value() == 120 && queries == 4, "loaded in the caller");
  ensure(background->run_all() == 0, "nothing ran in the background");

  larder::CacheStats s = prices.stats();
  ensure(s.refreshes == 2 && s.stale_hits == 2, "refreshes and stale hits are counted");
}
// snippet:swr_refresh_ahead:end

// A refresh that fails keeps the value being served, is counted and reported,
// and pauses that key's refreshes for error_backoff.
void failed_refresh() {
  auto clock = std::make_shared<larder::ManualClock>();
  auto background = std::make_shared<guide::StepExecutor>();
  bool down = false;
  int reported = 0;
  auto prices = larder::make_local_cache<std::string, int>(
      {.max_entries = 100},
      {.ttl = 60s,
       .stale_while_revalidate = 30s,
       .loader = [&](const std::string&) -> absl::StatusOr<int> {
         if (down) return absl::UnavailableError("database down");
         return 100;
       },
       .clock = clock,
       .executor = background,
       .on_refresh_error = [&](const std::string&, const absl::Status&) { ++reported; },
       .error_backoff = 5s});
  (void)prices.get("sku-1");
  down = true;
  clock->advance(61s);
  ensure(prices.get("sku-1").value() == 100, "stale value served");
  ensure(background->run_all() == 1, "the refresh ran");
  ensure(reported == 1 && prices.stats().refresh_failures == 1, "failure counted and reported");
  ensure(prices.get("sku-1").value() == 100, "still serving the stale value");
  ensure(background->run_all() == 0, "no new refresh during error_backoff");
  clock->advance(6s);
  ensure(prices.get("sku-1").value() == 100, "still stale after the back-off");
  ensure(background->run_all() == 1, "the back-off passed: one more refresh");
}

int main() {
  stale_while_revalidate();
  failed_refresh();
  std::puts("stale-while-revalidate: ok");
  return 0;
}
