// SPDX-License-Identifier: Apache-2.0
//
// MetricsDemo: two caches under a small workload, their metrics served on
// /metrics by prometheus-cpp's Exposer (examples/metrics.cc runs it;
// tests/prometheus/metrics_scrape_test.cc scrapes it).
//
//   users   cache-aside over a LocalStore of 2,000 entries, 30 s ttl + 30 s
//           stale-while-revalidate, a loader that takes ~200 us (the
//           "database"), skewed keys (a few hot, a long tail that evicts)
//   orders  write-back (delay 50 ms) whose Writer takes ~1 ms per batch
#ifndef LARDER_EXAMPLES_METRICS_DEMO_H_
#define LARDER_EXAMPLES_METRICS_DEMO_H_

#include <atomic>
#include <chrono>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "larder/larder.h"
#include "larder/metrics.h"
#include "larder/prometheus.h"
#include "prometheus/exposer.h"

namespace larder_example {

class MetricsDemo {
 public:
  // listen: "host:port" for the Exposer ("127.0.0.1:0": any free port).
  explicit MetricsDemo(const std::string& listen)
      : users_(std::make_shared<larder::LocalStore<int, std::string>>(
                   larder::LocalStoreOptions{.max_entries = 2'000}),
               users_options()),
        orders_(std::make_shared<larder::LocalStore<int, std::string>>(), orders_options()),
        collector_(std::make_shared<larder::prometheus::Collector>()),
        exposer_(listen) {
    collector_->add(larder::metric_source(users_));
    collector_->add(larder::metric_source(orders_));
    exposer_.RegisterCollectable(collector_);  // GET /metrics
  }
  ~MetricsDemo() { stop(); }

  int port() const { return exposer_.GetListeningPorts().at(0); }

  // start: `threads` workers run the workload until stop().
  void start(int threads) {
    for (int t = 0; t < threads; ++t) {
      workers_.emplace_back([this, t] { work(static_cast<unsigned>(t)); });
    }
  }
  void stop() {
    stop_.store(true);
    for (std::thread& w : workers_) w.join();
    workers_.clear();
  }
  std::uint64_t ops() const { return ops_.load(); }

  larder::Cache<int, std::string>& users() { return users_; }
  larder::Cache<int, std::string>& orders() { return orders_; }

 private:
  static larder::CacheOptions<int, std::string> users_options() {
    larder::CacheOptions<int, std::string> o;
    o.ttl = std::chrono::seconds(30);
    o.stale_while_revalidate = std::chrono::seconds(30);
    o.name = "users";
    return o;
  }
  static larder::CacheOptions<int, std::string> orders_options() {
    larder::CacheOptions<int, std::string> o;
    o.name = "orders";
    o.write_mode = larder::WriteMode::kWriteBack;
    o.write_back.delay = std::chrono::milliseconds(50);
    o.writer.write = [](std::span<const std::pair<int, std::string>>) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));  // the database
      return absl::OkStatus();
    };
    return o;
  }

  void work(unsigned seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<double> u(0.0, 1.0);
    auto load_user = [](int id) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));  // the database
      return "user-" + std::to_string(id);
    };
    while (!stop_.load(std::memory_order_relaxed)) {
      const double x = u(rng);
      const int key = static_cast<int>(x * x * x * 20'000);  // skewed toward 0
      const std::uint64_t n = ops_.fetch_add(1, std::memory_order_relaxed);
      if (n % 50 == 0) {
        const std::vector<int> keys{key, key + 1, key + 2};
        (void)users_.get_many(std::span<const int>(keys), [&](std::span<const int> ks) {
          absl::flat_hash_map<int, std::string> m;
          for (int k : ks) m[k] = load_user(k);
          return m;
        });
      } else if (n % 10 == 0) {
        (void)orders_.put(key % 500, "order-" + std::to_string(n));
      } else {
        (void)users_.get_or_load(key, load_user);
      }
    }
  }

  larder::Cache<int, std::string> users_;
  larder::Cache<int, std::string> orders_;
  std::shared_ptr<larder::prometheus::Collector> collector_;
  prometheus::Exposer exposer_;  // after the caches: stops serving before they go
  std::vector<std::thread> workers_;
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> ops_{0};
};

}  // namespace larder_example

#endif  // LARDER_EXAMPLES_METRICS_DEMO_H_
