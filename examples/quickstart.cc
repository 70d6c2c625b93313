// SPDX-License-Identifier: Apache-2.0
// quickstart: cache-aside over the in-process LocalStore (README.md shows this file).
#include <larder/larder.h>

#include <cstdio>
#include <string>

int main() {
  using namespace std::chrono_literals;
  auto clock = std::make_shared<larder::ManualClock>();  // time moves only when told
  auto store = std::make_shared<larder::LocalStore<int, std::string>>(
      larder::LocalStoreOptions{.max_entries = 10'000, .clock = clock});
  larder::Cache<int, std::string> users(store, {.ttl = 30s, .clock = clock});

  int queries = 0;
  auto load_user = [&](int id) -> absl::StatusOr<std::string> {
    ++queries;  // stands in for the slow database query
    return "user-" + std::to_string(id);
  };
  for (int i = 1; i <= 3; ++i) {
    absl::StatusOr<std::string> u = users.get_or_load(42, load_user);
    std::printf("read %d: %s (database queries: %d)\n", i, u.ok() ? u->c_str() : "error", queries);
  }
  clock->advance(31s);  // past the ttl: the next read loads again
  (void)users.get_or_load(42, load_user);
  larder::CacheStats s = users.stats();
  std::printf("after expiry: database queries: %d; hits=%llu misses=%llu hit_ratio=%.2f\n", queries,
              static_cast<unsigned long long>(s.hits), static_cast<unsigned long long>(s.misses),
              s.hit_ratio());
  return queries == 2 ? 0 : 1;
}
