// SPDX-License-Identifier: Apache-2.0
// docs/guides/negative-caching.md: remembering "not found".
#include <larder/larder.h>

#include <cstdio>
#include <map>
#include <string>

#include "guide.h"

using guide::ensure;
using namespace std::chrono_literals;

// snippet:negative_caching:begin
void negative_caching() {
  auto clock = std::make_shared<larder::ManualClock>();  // time moves only when told
  std::map<int, std::string> rows = {{1, "ada"}};        // the system of record
  int queries = 0;
  auto users = larder::make_local_cache<int, std::string>(
      {.max_entries = 10'000},
      {.ttl = 5min,
       .loader = [&](int id) -> absl::StatusOr<std::string> {
         ++queries;
         auto it = rows.find(id);
         if (it == rows.end()) return absl::NotFoundError("no such user");  // kNotFound: cacheable
         return it->second;
       },
       .negative = {.ttl = 10s, .max_entries = 10'000},
       .clock = clock});

  for (int i = 0; i < 3; ++i) {
    ensure(absl::IsNotFound(users.get(404).status()), "absent users are NotFound");
  }
  ensure(queries == 1 && users.stats().negative_hits == 2, "one query for three reads");

  clock->advance(11s);
  (void)users.get(404);
  ensure(queries == 2, "after negative.ttl the loader is asked again");

  // The user signs up: write the row, then invalidate (or put): the
  // remembered NotFound is forgotten at once, not after 10 s.
  rows[404] = "grace";
  (void)users.invalidate(404);
  ensure(users.get(404).value() == "grace" && queries == 3, "found right after the write");
}
// snippet:negative_caching:end

// Other errors are never remembered: every read asks again.
void errors_are_not_cached() {
  auto clock = std::make_shared<larder::ManualClock>();
  int queries = 0;
  auto users = larder::make_local_cache<int, std::string>(
      {.max_entries = 100}, {.loader = [&](int) -> absl::StatusOr<std::string> {
                               ++queries;
                               return absl::UnavailableError("database down");
                             },
                             .negative = {.ttl = 10s},
                             .clock = clock});
  (void)users.get(1);
  (void)users.get(1);
  ensure(queries == 2 && users.stats().negative_hits == 0, "kUnavailable is not remembered");
}

int main() {
  negative_caching();
  errors_are_not_cached();
  std::puts("negative caching: ok");
  return 0;
}
