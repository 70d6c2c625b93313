// SPDX-License-Identifier: Apache-2.0
//
// make_tiered_cache against a real redis-server: the two-tier setup in one
// statement (URI, RedisOptions or a shared RedisClient), integer keys in
// Redis as decimal text, a custom value codec without restating the key
// codec, the clock set once, and two instances kept coherent by the bus.
#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "gtest/gtest.h"
#include "larder/larder.h"
#include "larder/redis.h"
#include "tests/integration/redis_test_util.h"
#include "tests/testing/testing.h"

namespace larder {
namespace {

using std::chrono::seconds;
using testing::options_for;

// exists: EXISTS key (no prefix applied) through client.
bool exists(RedisClient& c, const std::string& key) {
  std::vector<std::string_view> args{"EXISTS", key};
  long long n = -1;
  absl::Status s = c.command(
      args, [&](std::size_t, RedisReplyRef r) { n = r.integer(); }, "exists");
  EXPECT_TRUE(s.ok()) << s;
  return n == 1;
}

struct Profile {
  std::string name;
};
// A user's value codec, given as the third template argument (no key codec restated).
struct ProfileCodec {
  static void encode(const Profile& p, std::string& out) { out += "P:" + p.name; }
  static absl::StatusOr<Profile> decode(std::string_view b) {
    if (b.substr(0, 2) != "P:") return absl::DataLossError("not a Profile");
    return Profile{std::string(b.substr(2))};
  }
};

TEST(RedisTieredCacheTest, IntegerKeysReachRedisAsDecimalText) {
  LARDER_REQUIRE_REDIS_OR_SKIP(addr);
  const RedisOptions o = options_for(addr);
  auto client = std::make_shared<RedisClient>(o);
  int loads = 0;
  auto users = make_tiered_cache<std::int64_t, Profile, ProfileCodec>(
      client, {.ttl = seconds(30), .loader = [&](std::int64_t id) {
                 ++loads;
                 return Profile{"user-" + std::to_string(id)};
               }});
  ASSERT_EQ(users.get(42).value().name, "user-42");
  ASSERT_EQ(users.get(-7).value().name, "user--7");
  EXPECT_TRUE(exists(*client, o.key_prefix + "42"));
  EXPECT_TRUE(exists(*client, o.key_prefix + "-7"));
  EXPECT_EQ(loads, 2);
  // Another instance (empty L1) finds the value in Redis: no load.
  auto other = make_tiered_cache<std::int64_t, Profile, ProfileCodec>(
      client, {.ttl = seconds(30), .loader = [&](std::int64_t) {
                 ++loads;
                 return Profile{"loaded again"};
               }});
  EXPECT_EQ(other.get(42).value().name, "user-42");
  EXPECT_EQ(loads, 2);
  ASSERT_TRUE(users.invalidate_all().ok());
}

TEST(RedisTieredCacheTest, UriAndKeyPrefix) {
  LARDER_REQUIRE_REDIS_OR_SKIP(addr);
  if (addr.host.find(':') != std::string::npos) GTEST_SKIP() << "IPv6 host in a URI";
  const std::string prefix = testing::unique_prefix();
  auto cache = make_tiered_cache<int, std::string>(
      "redis://" + addr.host + ":" + std::to_string(addr.port),
      {.ttl = seconds(30), .loader = [](int id) { return std::to_string(id * 2); }},
      {.key_prefix = prefix, .invalidation_bus = false, .load_guard = false});
  EXPECT_EQ(cache.get(21).value(), "42");
  RedisClient raw(options_for(addr, prefix));
  EXPECT_TRUE(exists(raw, prefix + "21"));
  ASSERT_TRUE(cache.invalidate(21).ok());
  EXPECT_FALSE(exists(raw, prefix + "21"));
  EXPECT_THROW((make_tiered_cache<int, std::string>("rediss://nope", {})), std::invalid_argument);
}

TEST(RedisTieredCacheTest, TheClockIsSetOnce) {
  LARDER_REQUIRE_REDIS_OR_SKIP(addr);
  RedisOptions o = options_for(addr);
  o.clock = std::make_shared<ManualClock>(std::chrono::system_clock::now());
  auto client = std::make_shared<RedisClient>(o);
  // The client reads one clock, the cache asks for another: refused.
  try {
    (void)make_tiered_cache<int, std::string>(
        client, {.clock = std::make_shared<ManualClock>(std::chrono::system_clock::now())});
    FAIL() << "a clock mismatch was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("clock"), std::string::npos) << e.what();
  }
  // Given through RedisOptions, the cache's clock reaches the client it builds.
  auto clock = std::make_shared<ManualClock>(std::chrono::system_clock::now());
  int loads = 0;
  auto cache =
      make_tiered_cache<int, std::string>(options_for(addr),
                                          {.ttl = seconds(30),
                                           .loader =
                                               [&](int) {
                                                 ++loads;
                                                 return std::string("v");
                                               },
                                           .clock = clock},
                                          {.invalidation_bus = false, .load_guard = false});
  EXPECT_EQ(cache.clock(), clock);
  ASSERT_TRUE(cache.get(1).ok());
  clock->advance(seconds(29));
  ASSERT_TRUE(cache.get(1).ok());
  EXPECT_EQ(loads, 1);
  clock->advance(seconds(2));
  ASSERT_TRUE(cache.get(1).ok());
  EXPECT_EQ(loads, 2);
  ASSERT_TRUE(cache.invalidate_all().ok());
}

}  // namespace
}  // namespace larder
