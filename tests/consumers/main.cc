// SPDX-License-Identifier: Apache-2.0
//
// The consumer test program: what a service that links larder::larder writes.
// Built by tests/consumers/{fetchcontent,find_package} and run by ctest, so it
// proves that the headers, the abseil dependency and (when built) larder::redis
// with its hiredis link reach a project outside larder's tree.
#include <larder/larder.h>

#include <cstdio>
#include <memory>
#include <string>
#if defined(LARDER_HAS_REDIS)
#include <larder/redis.h>
#endif

int main() {
  auto store = std::make_shared<larder::LocalStore<std::string, int>>(
      larder::LocalStoreOptions{.max_entries = 100});
  larder::Cache<std::string, int> cache(store, {.ttl = std::chrono::seconds(5)});
  int loads = 0;
  auto loader = [&](const std::string& k) -> absl::StatusOr<int> {
    ++loads;
    return static_cast<int>(k.size());
  };
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<int> v = cache.get_or_load("consumer", loader);
    if (!v.ok() || *v != 8) {
      std::fprintf(stderr, "cache returned the wrong value\n");
      return 1;
    }
  }
  if (loads != 1 || cache.stats().hits != 2) {
    std::fprintf(stderr, "expected 1 load and 2 hits, got %d loads\n", loads);
    return 1;
  }

#if defined(LARDER_HAS_REDIS)
  // Link check for larder::redis: a store pointed at a port nothing listens on
  // must construct, and answer with an error Status, not a crash.
  larder::RedisOptions ro;
  ro.port = 1;
  ro.connect_timeout = std::chrono::milliseconds(50);
  ro.command_timeout = std::chrono::milliseconds(50);
  larder::RedisStore<std::string, int> redis(ro);
  if (redis.get("k").ok()) {
    std::fprintf(stderr, "a store with no server answered OK\n");
    return 1;
  }
  std::printf("larder %s consumer ok (with redis)\n", larder::kVersionString);
#else
  std::printf("larder %s consumer ok\n", larder::kVersionString);
#endif
  return 0;
}
