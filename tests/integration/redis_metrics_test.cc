// SPDX-License-Identifier: Apache-2.0
//
// The Redis part of metrics.h against a real redis-server: command latency by
// command kind (single and pipelined), pool and breaker gauges per node, the
// client's counters, all reached through for_each_metric on a Cache over a
// RedisStore. The breaker case uses a port nobody listens on.
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "larder/metrics.h"
#include "larder/redis.h"
#include "tests/integration/redis_test_util.h"
#include "tests/testing/testing.h"

namespace larder {
namespace {

using testing::options_for;

// scrape: name{labels...} -> value (histograms: their count).
template <class K, class V>
std::map<std::string, double> scrape(const Cache<K, V>& c) {
  std::map<std::string, double> out;
  for_each_metric(c, [&](const Metric& m) {
    std::string k(m.name);
    k += '{';
    for (std::size_t i = 0; i < m.labels.size(); ++i) {
      if (i > 0) k += ',';
      k += std::string(m.labels[i].name) + "=" + std::string(m.labels[i].value);
    }
    k += '}';
    out[k] = m.type == MetricType::kHistogram ? static_cast<double>(m.histogram->count) : m.value;
  });
  return out;
}

double at(const std::map<std::string, double>& m, const std::string& k) {
  auto it = m.find(k);
  EXPECT_NE(it, m.end()) << "missing metric " << k;
  return it == m.end() ? -1 : it->second;
}

TEST(RedisMetricsTest, CommandsPoolAndCountersThroughTheCache) {
  LARDER_REQUIRE_REDIS_OR_SKIP(addr);
  auto client = std::make_shared<RedisClient>(options_for(addr));
  auto store = std::make_shared<RedisStore<std::string, std::string>>(client);
  CacheOptions<std::string, std::string> o;
  o.name = "r";
  {
    Cache<std::string, std::string> cache(store, o);
    auto loader = [](const std::string& k) { return "v" + k; };
    for (int round = 0; round < 2; ++round) {
      for (int i = 0; i < 5; ++i)
        ASSERT_TRUE(cache.get_or_load("k" + std::to_string(i), loader).ok());
    }
    const std::vector<std::string> keys{"k0", "k1", "k9"};
    ASSERT_TRUE(cache
                    .get_many(std::span<const std::string>(keys),
                              [](std::span<const std::string> ks) {
                                absl::flat_hash_map<std::string, std::string> m;
                                for (const std::string& k : ks) m[k] = k;
                                return m;
                              })
                    .ok());

    const auto m = scrape(cache);
    const std::string node = addr.host + ":" + std::to_string(addr.port);
    const std::string base = "cache=r,store=store";
    // Every get_or_load sent a GET (a miss may re-read under its flight),
    // every load one SET, get_many an MGET (and one to re-read its misses).
    const std::string h = "larder_redis_command_duration_seconds{" + base;
    EXPECT_GE(at(m, h + ",command=GET,pipeline=0}"), 10);
    EXPECT_EQ(at(m, h + ",command=SET,pipeline=0}"), 6);
    EXPECT_GE(at(m, h + ",command=MGET,pipeline=0}"), 1);
    EXPECT_EQ(at(m, h + ",command=EVAL,pipeline=1}"), 0);
    // Exactly one record per call, by the first command's kind, any case.
    const std::string ka = client->options().key_prefix + "a",
                      kb = client->options().key_prefix + "b";
    const std::string_view get[] = {"get", ka};
    const std::string_view set1[] = {"SET", ka, "1"}, set2[] = {"SET", kb, "2"};
    const RedisArgs pipe[] = {set1, set2};
    ASSERT_TRUE(client
                    ->command(
                        get, [](std::size_t, RedisReplyRef) {}, "GET")
                    .ok());
    ASSERT_TRUE(client
                    ->pipeline(
                        pipe, [](std::size_t, RedisReplyRef) {}, "SET")
                    .ok());
    const std::string_view del[] = {"DEL", ka, kb};
    ASSERT_TRUE(client
                    ->command(
                        del, [](std::size_t, RedisReplyRef) {}, "DEL")
                    .ok());
    const auto m2 = scrape(cache);
    EXPECT_EQ(at(m2, h + ",command=GET,pipeline=0}"), at(m, h + ",command=GET,pipeline=0}") + 1);
    EXPECT_EQ(at(m2, h + ",command=SET,pipeline=1}"), at(m, h + ",command=SET,pipeline=1}") + 1);
    EXPECT_EQ(at(m2, h + ",command=SET,pipeline=0}"), 6);
    EXPECT_EQ(at(m2, h + ",command=DEL,pipeline=0}"), at(m, h + ",command=DEL,pipeline=0}") + 1);
    // Pool: nothing borrowed between calls; idle connections are the open ones.
    const RedisClientStats cs = client->stats();
    EXPECT_EQ(at(m, "larder_redis_pool_connections{" + base + ",node=" + node + ",state=in_use}"),
              0);
    EXPECT_EQ(at(m, "larder_redis_pool_connections{" + base + ",node=" + node + ",state=idle}"),
              static_cast<double>(cs.open_connections));
    EXPECT_GE(cs.open_connections, 1u);
    EXPECT_EQ(at(m, "larder_redis_breaker_open{" + base + ",node=" + node + "}"), 0);
    EXPECT_EQ(at(m, "larder_redis_connects_total{" + base + "}"), static_cast<double>(cs.connects));
    EXPECT_EQ(at(m, "larder_redis_retries_total{" + base + "}"), static_cast<double>(cs.retries));
    EXPECT_EQ(at(m, "larder_cache_hits_total{cache=r}"), cache.stats().hits);
    (void)store->clear();
  }
}

TEST(RedisMetricsTest, BreakerStatePerNode) {
  const int port = testing::free_port();  // nobody listens: connections are refused
  RedisOptions ro;
  ro.host = "127.0.0.1";
  ro.port = port;
  ro.breaker_failures = 1;
  ro.breaker_probe_interval = std::chrono::seconds(60);  // stays open for the test
  auto client = std::make_shared<RedisClient>(ro);
  auto store = std::make_shared<RedisStore<std::string, std::string>>(client);
  CacheOptions<std::string, std::string> o;
  o.name = "down";
  Cache<std::string, std::string> cache(store, o);
  EXPECT_TRUE(cache.get_or_load("k", [](const std::string&) { return std::string("v"); }).ok());
  ASSERT_TRUE(client->breaker_open());
  const auto m = scrape(cache);
  const std::string node = "127.0.0.1:" + std::to_string(port);
  EXPECT_EQ(at(m, "larder_redis_breaker_open{cache=down,store=store,node=" + node + "}"), 1);
  EXPECT_GE(at(m, "larder_redis_breaker_opens_total{cache=down,store=store}"), 1);
  EXPECT_GE(at(m, "larder_cache_store_errors_total{cache=down}"), 1);
  // Refused calls are timed too (fast failures are part of what callers see).
  EXPECT_GE(
      at(m, "larder_redis_command_duration_seconds{cache=down,store=store,command=GET,pipeline=0}"),
      1);
}

}  // namespace
}  // namespace larder
