// SPDX-License-Identifier: Apache-2.0
// docs/guides/cross-process-single-flight.md: one load across service instances.
// Needs a Redis server: LARDER_TEST_REDIS_HOST and LARDER_TEST_REDIS_PORT
// (scripts/test.sh starts one); without them it exits 77 (ctest: skipped).
#include <larder/larder.h>
#include <larder/redis.h>
#include <unistd.h>

#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "guide.h"

using guide::ensure;
using namespace std::chrono_literals;

// snippet:cross_process:begin
void cross_process(const std::string& redis_uri, const std::string& prefix) {
  std::atomic<int> queries{0};
  auto slow_query = [&](int id) -> absl::StatusOr<std::string> {
    ++queries;
    std::this_thread::sleep_for(100ms);  // the expensive query that a stampede repeats
    return "report-" + std::to_string(id);
  };
  // Two service instances (two processes in production; two RedisClients here).
  // make_tiered_cache gives each a RedisLoadGuard on its own connection pool.
  auto a = larder::make_tiered_cache<int, std::string>(
      redis_uri, {.ttl = 1min, .loader = slow_query}, {.key_prefix = prefix});
  auto b = larder::make_tiered_cache<int, std::string>(
      redis_uri, {.ttl = 1min, .loader = slow_query}, {.key_prefix = prefix});

  // Both instances miss key 7 at the same moment, four requests each.
  std::barrier start(8);
  std::vector<std::jthread> requests;
  for (int i = 0; i < 8; ++i) {
    requests.emplace_back([&, i] {
      start.arrive_and_wait();
      auto& cache = i % 2 == 0 ? a : b;
      ensure(cache.get(7).value() == "report-7", "every request gets the value");
    });
  }
  requests.clear();
  ensure(queries == 1, "eight requests on two instances: one query");
  ensure(a.stats().loads + b.stats().loads == 1, "one instance loaded, the other waited");
  (void)a.invalidate(7);
}
// snippet:cross_process:end

int main() {
  // NOLINTBEGIN(concurrency-mt-unsafe): main(), before any thread
  const char* host = std::getenv("LARDER_TEST_REDIS_HOST");
  const char* port = std::getenv("LARDER_TEST_REDIS_PORT");
  const char* required = std::getenv("LARDER_TEST_REQUIRE_REDIS");
  // NOLINTEND(concurrency-mt-unsafe)
  if (host == nullptr || port == nullptr) {
    std::fprintf(stderr, "no Redis: set LARDER_TEST_REDIS_HOST and LARDER_TEST_REDIS_PORT\n");
    return required != nullptr && std::string(required) == "1" ? 1 : 77;
  }
  const std::string prefix = "guide:xproc:" + std::to_string(getpid()) + ":";
  cross_process("redis://" + std::string(host) + ":" + port, prefix);
  std::puts("cross-process single-flight: ok");
  return 0;
}
