// SPDX-License-Identifier: Apache-2.0
#include "tests/testing/testing.h"

#include <cstdlib>

namespace larder::testing {

std::string env_or(const char* name, std::string fallback) {
  const char* v = std::getenv(name);
  return (v != nullptr && *v != '\0') ? std::string(v) : std::move(fallback);
}

std::optional<RedisAddress> test_redis() {
  std::string host = env_or("LARDER_TEST_REDIS_HOST", "");
  std::string port = env_or("LARDER_TEST_REDIS_PORT", "");
  if (host.empty() || port.empty()) return std::nullopt;
  RedisAddress a;
  a.host = host;
  a.port = std::atoi(port.c_str());
  a.unix_socket = env_or("LARDER_TEST_REDIS_SOCKET", "");
  if (a.port <= 0) return std::nullopt;
  return a;
}

bool redis_required() { return env_or("LARDER_TEST_REQUIRE_REDIS", "0") == "1"; }

}  // namespace larder::testing
