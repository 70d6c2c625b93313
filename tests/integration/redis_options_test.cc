// SPDX-License-Identifier: Apache-2.0
//
// Redis options accept designated initializers naming any subset of fields,
// warning-free under -Wextra -Werror (see tests/options_test.cc). Needs no server.
#include <chrono>

#include "gtest/gtest.h"
#include "larder/redis.h"

namespace larder {
namespace {

TEST(RedisOptionsTest, AnySubsetInApiOrder) {
  RedisOptions a{.host = "10.0.0.5", .key_prefix = "users:v1:"};
  EXPECT_EQ(a.host, "10.0.0.5");
  EXPECT_EQ(a.port, 6379);
  EXPECT_EQ(a.pool_size, 4u);
  EXPECT_EQ(a.connect_timeout, std::chrono::milliseconds(200));
  EXPECT_EQ(a.command_timeout, std::chrono::milliseconds(100));
  RedisOptions b{.port = 7000, .password = "pw", .db = 2};
  EXPECT_EQ(b.db, 2);
  EXPECT_TRUE(b.username.empty());
  RedisLockOptions l{.wait = std::chrono::milliseconds(5)};
  EXPECT_EQ(l.ttl, std::chrono::milliseconds(5000));
  RedisLoadGuardOptions g{.poll_interval = std::chrono::milliseconds(3)};
  EXPECT_EQ(g.lock.wait, std::chrono::milliseconds(2000));
  RedisInvalidationBusOptions bus{};
  EXPECT_EQ(bus.ping_interval, std::chrono::milliseconds(1000));
  RedisInvalidationBusOptions fast{.ping_interval = std::chrono::milliseconds(50)};
  EXPECT_EQ(fast.ping_interval, std::chrono::milliseconds(50));
}

}  // namespace
}  // namespace larder
