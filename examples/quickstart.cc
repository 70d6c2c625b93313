// SPDX-License-Identifier: Apache-2.0
//
// quickstart: cache-aside over an in-process LocalStore. The first read loads,
// the next ones hit; when the entry expires, the next read loads again.
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>

#include <larder/larder.h>
#include <larder/local_store.h>

int main() {
  using namespace std::chrono_literals;
  auto clock = std::make_shared<larder::ManualClock>();  // time moves when we say
  auto store = std::make_shared<larder::LocalStore<int, std::string>>(
      larder::LocalStoreOptions{.max_entries = 10'000, .clock = clock});
  larder::Cache<int, std::string> users(store, {.ttl = 30s, .clock = clock});

  int db_queries = 0;
  auto load_user = [&](int id) -> absl::StatusOr<std::string> {
    ++db_queries;  // stands in for a database query
    return "user-" + std::to_string(id);
  };

  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<std::string> u = users.get_or_load(42, load_user);
    std::printf("read %d: %s (db queries so far: %d)\n", i + 1,
                u.ok() ? u->c_str() : "error", db_queries);
  }
  clock->advance(31s);  // past the ttl: the next read loads again
  (void)users.get_or_load(42, load_user);
  std::printf("after expiry: db queries = %d\n", db_queries);

  larder::CacheStats s = users.stats();
  std::printf("hits=%llu misses=%llu loads=%llu hit_ratio=%.2f\n",
              static_cast<unsigned long long>(s.hits), static_cast<unsigned long long>(s.misses),
              static_cast<unsigned long long>(s.loads), s.hit_ratio());
  return db_queries == 2 ? 0 : 1;
}
