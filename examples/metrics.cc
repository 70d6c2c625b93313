// SPDX-License-Identifier: Apache-2.0
//
// metrics: serves larder's metrics on http://<listen>/metrics (Prometheus text
// format, through larder::prometheus and prometheus-cpp's Exposer) while two
// caches run a small workload (examples/metrics_demo.h).
//
//   metrics [listen=127.0.0.1:9464] [seconds=60] [threads=2]
//   curl -s http://127.0.0.1:9464/metrics | grep larder_cache_hits_total
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <thread>

#include "metrics_demo.h"

int main(int argc, char** argv) {
  const std::string listen = argc > 1 ? argv[1] : "127.0.0.1:9464";
  const int seconds = argc > 2 ? std::atoi(argv[2]) : 60;
  const int threads = argc > 3 ? std::atoi(argv[3]) : 2;
  try {
    larder_example::MetricsDemo demo(listen);
    std::printf("serving http://127.0.0.1:%d/metrics for %d s\n", demo.port(), seconds);
    std::fflush(stdout);
    demo.start(threads);
    std::this_thread::sleep_for(std::chrono::seconds(seconds));
    demo.stop();
    const larder::CacheStats s = demo.users().stats();
    std::printf("users: %llu hits, %llu misses, hit ratio %.3f; %llu operations\n",
                static_cast<unsigned long long>(s.hits), static_cast<unsigned long long>(s.misses),
                s.hit_ratio(), static_cast<unsigned long long>(demo.ops()));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "metrics: %s\n", e.what());
    return 1;
  }
  return 0;
}
