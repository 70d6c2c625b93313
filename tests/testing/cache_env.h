// SPDX-License-Identifier: Apache-2.0
//
// CacheEnv: the usual surroundings of a Cache under test: a ManualClock, a
// fault-injecting MapStore on it, a ManualExecutor (background work runs only
// when the test says so), and options wired to them.
#ifndef LARDER_TESTS_TESTING_CACHE_ENV_H_
#define LARDER_TESTS_TESTING_CACHE_ENV_H_

#include <memory>
#include <string>

#include "larder/cache.h"
#include "larder/clock.h"
#include "tests/testing/manual_executor.h"
#include "tests/testing/map_store.h"

namespace larder::testing {

template <class K = std::string, class V = std::string>
struct CacheEnv {
  std::shared_ptr<ManualClock> clock =
      std::make_shared<ManualClock>(from_unix_millis(1'700'000'000'000));
  std::shared_ptr<MapStore<K, V>> store = std::make_shared<MapStore<K, V>>(clock);
  std::shared_ptr<ManualExecutor> executor = std::make_shared<ManualExecutor>();

  CacheOptions<K, V> options() const {
    CacheOptions<K, V> o;
    o.ttl = std::chrono::seconds(10);
    o.clock = clock;
    o.executor = executor;
    return o;
  }

  // Tasks still queued hold the cache's core; run them (they see the cache
  // closed and only release their flights) so nothing outlives the test.
  ~CacheEnv() { executor->run_all(); }
};

}  // namespace larder::testing

#endif  // LARDER_TESTS_TESTING_CACHE_ENV_H_
