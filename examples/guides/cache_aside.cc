// SPDX-License-Identifier: Apache-2.0
// docs/guides/cache-aside.md: cache-aside with single-flight (the guide shows the marked lines).
#include <larder/larder.h>

#include <atomic>
#include <latch>
#include <string>
#include <thread>
#include <vector>

#include "guide.h"

using guide::ensure;
using namespace std::chrono_literals;

// snippet:cache_aside:begin
struct UserDb {  // stands in for the system of record
  std::atomic<int> queries{0};
  std::latch slow{1};  // the first query waits here until the stampede has gathered
  absl::StatusOr<std::string> load(int id) {
    ++queries;
    slow.wait();
    return "user-" + std::to_string(id);
  }
};

void cache_aside(UserDb& db) {
  auto clock = std::make_shared<larder::ManualClock>();  // time moves only when told
  auto users = larder::make_local_cache<int, std::string>(
      {.max_entries = 100'000}, {.ttl = 30s,
                                 .loader = [&db](int id) { return db.load(id); },
                                 .ttl_jitter = 0.1,  // each entry lives 27 s to 33 s
                                 .clock = clock});   // leave out in a service: the system clock

  // A stampede: eight requests miss key 42 at once. One loads, seven wait for it.
  std::vector<std::jthread> requests;
  for (int i = 0; i < 8; ++i) {
    requests.emplace_back([&] { ensure(users.get(42).value() == "user-42", "all get the value"); });
  }
  guide::wait_until([&] { return users.stats().coalesced == 7; }, "seven callers join the load");
  db.slow.count_down();  // the query returns
  requests.clear();      // joins the threads
  ensure(db.queries == 1, "eight concurrent misses cost one query");

  // Hits until the ttl (with jitter) runs out; then one query again.
  (void)users.get(42);
  clock->advance(34s);
  (void)users.get(42);
  ensure(db.queries == 2, "reloaded once after the ttl");

  // A write: update the system of record, then drop the cached copy.
  (void)users.invalidate(42);
  (void)users.get(42);
  ensure(db.queries == 3, "the next read after invalidate loads again");

  larder::CacheStats s = users.stats();
  ensure(s.loads == 3 && s.hits == 1 && s.misses == 10, "stats count it");
}
// snippet:cache_aside:end

// An invalidate that races a load in flight wins: the load's value goes to its
// caller but is not stored, so the next read loads again.
void invalidate_beats_load() {
  auto clock = std::make_shared<larder::ManualClock>();
  std::latch loading(1), release(1);
  int queries = 0;
  auto users = larder::make_local_cache<int, std::string>(
      {.max_entries = 100}, {.loader = [&](int id) -> absl::StatusOr<std::string> {
                               if (++queries == 1) {
                                 loading.count_down();
                                 release.wait();
                               }
                               return "user-" + std::to_string(id);
                             },
                             .clock = clock});
  std::jthread reader([&] { ensure(users.get(7).ok(), "the racing load's caller gets a value"); });
  loading.wait();
  ensure(users.invalidate(7).ok(), "invalidate succeeds while the load runs");
  release.count_down();
  reader.join();
  ensure(!users.get_if_present(7).has_value(), "the superseded load was not stored");
  (void)users.get(7);
  ensure(queries == 2, "the next read loads again");
}

int main() {
  UserDb db;
  cache_aside(db);
  invalidate_beats_load();
  std::puts("cache-aside: ok");
  return 0;
}
