// SPDX-License-Identifier: Apache-2.0
// quickstart: cache-aside over the in-process LocalStore (README.md shows this file).
#include <larder/larder.h>

#include <cstdio>
#include <string>

int main() {
  using namespace std::chrono_literals;
  auto clock = std::make_shared<larder::ManualClock>();  // time moves only when told
  int queries = 0;
  auto users = larder::make_local_cache<int, std::string>(
      {.max_entries = 10'000}, {.ttl = 30s,
                                .loader = [&](int id) -> absl::StatusOr<std::string> {
                                  ++queries;  // stands in for the slow database query
                                  return "user-" + std::to_string(id);
                                },
                                .clock = clock});

  for (int i = 1; i <= 3; ++i) {
    absl::StatusOr<std::string> u = users.get(42);
    std::printf("read %d: %s (database queries: %d)\n", i, u.ok() ? u->c_str() : "error", queries);
  }
  clock->advance(31s);  // past the ttl: the next read loads again
  (void)users.get(42);
  auto some =
      users.get_many({1, 2, 42});  // the loader, key by key (give .batch_loader for one query)
  larder::CacheStats s = users.stats();
  std::printf(
      "after expiry: database queries: %d; %zu of 3 in get_many; hits=%llu misses=%llu "
      "hit_ratio=%.2f\n",
      queries, some->size(), static_cast<unsigned long long>(s.hits),
      static_cast<unsigned long long>(s.misses), s.hit_ratio());
  return queries == 4 ? 0 : 1;
}
