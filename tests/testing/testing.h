// SPDX-License-Identifier: Apache-2.0
//
// Shared test helpers. Include "tests/testing/testing.h" from a test; larger
// helpers live beside it, one concept per header.
#ifndef LARDER_TESTS_TESTING_TESTING_H_
#define LARDER_TESTS_TESTING_TESTING_H_

#include <chrono>
#include <optional>
#include <string>
#include <thread>

namespace larder::testing {

// eventually: polls pred (every millisecond) until it holds or `limit` of
// real time passes; returns whether it held. For waits on another thread's progress
// that no latch can express (a counter another thread bumps): write
// EXPECT_TRUE(eventually(...)) << "what was awaited", so a regression fails
// with a message instead of spinning until the ctest timeout.
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit = std::chrono::seconds(20)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

// env_or: the environment variable `name`, or `fallback` when unset or empty.
std::string env_or(const char* name, std::string fallback);

// RedisAddress: where the test redis-server listens.
struct RedisAddress {
  std::string host;
  int port = 0;
  std::string unix_socket;  // empty unless the server also listens on one
};

// test_redis: the server scripts/test.sh started, from LARDER_TEST_REDIS_HOST,
// LARDER_TEST_REDIS_PORT and (optionally) LARDER_TEST_REDIS_SOCKET; nullopt
// when none was given.
std::optional<RedisAddress> test_redis();

// redis_required: true when LARDER_TEST_REQUIRE_REDIS=1 (scripts/test.sh sets
// it), in which case a Redis test must fail rather than skip without a server.
bool redis_required();

}  // namespace larder::testing

// LARDER_REQUIRE_REDIS_OR_SKIP(addr): in a gtest body, binds `addr` to the test
// server's address, or skips the test with a clear message (fails instead,
// under scripts/test.sh) when no server was given.
#define LARDER_REQUIRE_REDIS_OR_SKIP(addr)                                                     \
  std::optional<::larder::testing::RedisAddress> addr##_opt = ::larder::testing::test_redis(); \
  if (!addr##_opt) {                                                                           \
    if (::larder::testing::redis_required()) {                                                 \
      FAIL() << "LARDER_TEST_REQUIRE_REDIS=1 but LARDER_TEST_REDIS_HOST/PORT unset";           \
    }                                                                                          \
    GTEST_SKIP() << "no Redis server: set LARDER_TEST_REDIS_HOST and "                         \
                    "LARDER_TEST_REDIS_PORT (scripts/test.sh does)";                           \
  }                                                                                            \
  const ::larder::testing::RedisAddress& addr = *addr##_opt

#endif  // LARDER_TESTS_TESTING_TESTING_H_
