// SPDX-License-Identifier: Apache-2.0
//
// examples/metrics_demo.h served by prometheus-cpp's Exposer on an ephemeral
// loopback port, scraped over HTTP while its workload runs: the families are
// there with the right types, and each counter lies between the CacheStats
// read just before and just after the scrape. Every socket wait is bounded.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "examples/metrics_demo.h"
#include "gtest/gtest.h"
#include "larder/prometheus.h"
#include "tests/testing/testing.h"

namespace larder {
namespace {

using namespace std::chrono_literals;

// http_get: the body of GET path from 127.0.0.1:port, or "" with *error set.
// Each wait (connect, every read) is bounded by `limit`.
std::string http_get(int port, const std::string& path, std::string* error,
                     std::chrono::milliseconds limit = 10s) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  timeval tv{static_cast<time_t>(limit.count() / 1000),
             static_cast<suseconds_t>(limit.count() % 1000 * 1000)};
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    *error = "connect failed";
    ::close(fd);
    return {};
  }
  const std::string req = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
  if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
    *error = "send failed";
    ::close(fd);
    return {};
  }
  std::string resp;
  char buf[65536];
  const auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd p{fd, POLLIN, 0};
    if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) {
      *error = "timed out reading the response";
      break;
    }
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;  // HTTP/1.0: the server closes after the body
    resp.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  const std::size_t body = resp.find("\r\n\r\n");
  if (resp.rfind("HTTP/1.1 200", 0) != 0 && resp.rfind("HTTP/1.0 200", 0) != 0) {
    if (error->empty()) *error = "not 200: " + resp.substr(0, resp.find('\r'));
    return {};
  }
  return body == std::string::npos ? std::string() : resp.substr(body + 4);
}

// Exposition: a parsed text exposition.
struct Exposition {
  std::map<std::string, std::string> types;  // family -> counter / gauge / histogram
  std::map<std::string, double> samples;     // name{labels} as printed -> value

  static Exposition parse(const std::string& text) {
    Exposition e;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("# TYPE ", 0) == 0) {
        std::istringstream l(line.substr(7));
        std::string name, type;
        l >> name >> type;
        e.types[name] = type;
      } else if (!line.empty() && line[0] != '#') {
        const std::size_t sp = line.rfind(' ');
        e.samples[line.substr(0, sp)] = std::stod(line.substr(sp + 1));
      }
    }
    return e;
  }
  double at(const std::string& k) const {
    auto it = samples.find(k);
    EXPECT_NE(it, samples.end()) << "no sample " << k;
    return it == samples.end() ? -1 : it->second;
  }
};

TEST(MetricsScrapeTest, ServesFamiliesMatchingCacheStats) {
  larder_example::MetricsDemo demo("127.0.0.1:0");
  const int port = demo.port();
  ASSERT_GT(port, 0);
  demo.start(2);
  ASSERT_TRUE(testing::eventually([&] { return demo.users().stats().hits > 100; }, 30s))
      << "the workload made no progress";

  const CacheStats before = demo.users().stats();
  const CacheStats orders_before = demo.orders().stats();
  std::string error;
  const std::string body = http_get(port, "/metrics", &error);
  const CacheStats after = demo.users().stats();
  const CacheStats orders_after = demo.orders().stats();
  ASSERT_TRUE(error.empty()) << error;
  const Exposition e = Exposition::parse(body);

  EXPECT_EQ(e.types.at("larder_cache_hits_total"), "counter");
  EXPECT_EQ(e.types.at("larder_cache_dirty_keys"), "gauge");
  EXPECT_EQ(e.types.at("larder_cache_load_duration_seconds"), "histogram");
  EXPECT_EQ(e.types.at("larder_store_entries"), "gauge");
  struct Check {
    const char* name;
    std::uint64_t CacheStats::*field;
  };
  for (const Check& c : {Check{"larder_cache_hits_total", &CacheStats::hits},
                         Check{"larder_cache_misses_total", &CacheStats::misses},
                         Check{"larder_cache_loads_total", &CacheStats::loads},
                         Check{"larder_cache_stale_hits_total", &CacheStats::stale_hits},
                         Check{"larder_cache_evictions_total", &CacheStats::evictions}}) {
    const double v = e.at(std::string(c.name) + "{cache=\"users\"}");
    EXPECT_GE(v, static_cast<double>(before.*c.field)) << c.name;
    EXPECT_LE(v, static_cast<double>(after.*c.field)) << c.name;
  }
  const double writes = e.at("larder_cache_writes_total{cache=\"orders\"}");
  EXPECT_GE(writes, static_cast<double>(orders_before.writes));
  EXPECT_LE(writes, static_cast<double>(orders_after.writes));
  // A histogram: cumulative buckets ending in +Inf = _count; loads were timed.
  const double count =
      e.at("larder_cache_load_duration_seconds_count{cache=\"users\",loader=\"single\"}");
  EXPECT_GT(count, 0);
  EXPECT_EQ(e.at("larder_cache_load_duration_seconds_bucket{cache=\"users\",loader=\"single\",le="
                 "\"+Inf\"}"),
            count);
  EXPECT_GT(e.at("larder_cache_load_duration_seconds_sum{cache=\"users\",loader=\"single\"}"), 0);
  // The store's occupancy: the bound holds.
  EXPECT_LE(e.at("larder_store_entries{cache=\"users\",store=\"store\"}"), 2'000 * 1.1);

  // Still serving after more work; counters only grow.
  ASSERT_TRUE(testing::eventually([&] { return demo.users().stats().hits > after.hits; }, 30s));
  const std::string body2 = http_get(port, "/metrics", &error);
  ASSERT_TRUE(error.empty()) << error;
  EXPECT_GT(Exposition::parse(body2).at("larder_cache_hits_total{cache=\"users\"}"),
            e.at("larder_cache_hits_total{cache=\"users\"}"));
  demo.stop();
}

TEST(MetricsScrapeTest, CollectorRemoveStopsReporting) {
  Cache<int, int> c(std::make_shared<LocalStore<int, int>>(), CacheOptions<int, int>{});
  prometheus::Collector collector;
  const std::uint64_t id = collector.add(metric_source(c));
  EXPECT_FALSE(collector.Collect().empty());
  collector.remove(id);
  EXPECT_TRUE(collector.Collect().empty());
}

}  // namespace
}  // namespace larder
