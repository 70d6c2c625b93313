// SPDX-License-Identifier: Apache-2.0
// docs/guides/stale-if-error.md: stale-if-error (fail-safe) through an outage.
#include <larder/larder.h>

#include <cstdio>
#include <string>

#include "guide.h"

using guide::ensure;
using namespace std::chrono_literals;

// snippet:stale_if_error:begin
struct RatesDb {  // stands in for a service that can go down
  bool down = false;
  int calls = 0;
  absl::StatusOr<double> rate(const std::string&) {
    ++calls;
    if (down) return absl::UnavailableError("rates service down");
    return 1.08;
  }
};

void stale_if_error() {
  auto clock = std::make_shared<larder::ManualClock>();  // time moves only when told
  RatesDb db;
  auto rates = larder::make_local_cache<std::string, double>(
      {.max_entries = 1'000},
      {.ttl = 30s,
       .stale_if_error = 1h,  // after the ttl, the old value is the answer when loading fails
       .loader = [&](const std::string& pair) { return db.rate(pair); },
       .clock = clock,
       .error_backoff = 5s});  // after a failure, ask the source again only after 5 s

  ensure(rates.get("EURUSD").value() == 1.08, "loaded");
  db.down = true;
  clock->advance(31s);  // stale now
  ensure(rates.get("EURUSD").value() == 1.08,
         "the load failed: the stale value instead of the error");
  ensure(rates.get("EURUSD").value() == 1.08 && db.calls == 2, "within error_backoff: no call");
  clock->advance(6s);
  (void)rates.get("EURUSD");
  ensure(db.calls == 3, "after the back-off: one more try");

  db.down = false;
  clock->advance(6s);
  ensure(rates.get("EURUSD").value() == 1.08 && db.calls == 4, "recovered: loaded fresh");

  // An outage longer than stale_if_error: the error comes through.
  db.down = true;
  clock->advance(31s + 1h);
  absl::StatusOr<double> r = rates.get("EURUSD");
  ensure(absl::IsUnavailable(r.status()), "past ttl + stale_if_error: the loader's error");

  larder::CacheStats s = rates.stats();
  ensure(s.stale_hits == 2 && s.load_failures == 3, "fallbacks and failures are counted");
}
// snippet:stale_if_error:end

int main() {
  stale_if_error();
  std::puts("stale-if-error: ok");
  return 0;
}
