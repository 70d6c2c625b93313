// SPDX-License-Identifier: Apache-2.0
#include "larder/single_flight.h"

#include <atomic>
#include <chrono>
#include <latch>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/testing/testing.h"

namespace larder {
namespace {

TEST(SingleFlightTest, WaitersGetTheLeadersResult) {
  SingleFlight<std::string, int> group;
  auto lead = group.join("k");
  ASSERT_TRUE(lead.leader);
  constexpr int kWaiters = 16;
  std::latch joined(kWaiters);
  std::vector<int> got(kWaiters, -1);
  std::vector<std::thread> threads;
  for (int i = 0; i < kWaiters; ++i) {
    threads.emplace_back([&, i] {
      auto j = group.join("k");
      EXPECT_FALSE(j.leader);
      joined.count_down();
      got[i] = *j.flight->wait();
    });
  }
  joined.wait();
  EXPECT_EQ(group.size(), 1u);
  group.finish("k", lead.flight, 42);
  for (auto& t : threads) t.join();
  for (int v : got) EXPECT_EQ(v, 42);
  EXPECT_EQ(group.size(), 0u);
}

TEST(SingleFlightTest, ErrorsReachEveryWaiter) {
  SingleFlight<int, int> group;
  auto lead = group.join(1);
  auto other = group.join(1);
  ASSERT_FALSE(other.leader);
  group.finish(1, lead.flight, absl::UnavailableError("down"));
  EXPECT_EQ(other.flight->wait().status().code(), absl::StatusCode::kUnavailable);
}

TEST(SingleFlightTest, DistinctKeysDoNotWaitOnEachOther) {
  SingleFlight<std::string, int> group;
  auto a = group.join("a");  // held, never finished until the end
  bool joined = true;
  absl::StatusOr<int> b = group.run(
      "b", [] { return 2; }, &joined);
  EXPECT_FALSE(joined);
  EXPECT_EQ(*b, 2);
  group.finish("a", a.flight, 1);
}

TEST(SingleFlightTest, RunCallsAgainOnceTheFlightIsOver) {
  SingleFlight<int, int> group;
  int calls = 0;
  for (int i = 0; i < 3; ++i) EXPECT_EQ(*group.run(7, [&] { return ++calls; }), i + 1);
  EXPECT_EQ(calls, 3);
}

TEST(SingleFlightTest, RunRethrowsToLeaderAndFailsWaiters) {
  SingleFlight<int, int> group;
  std::shared_ptr<Flight<int>> seen;
  EXPECT_THROW((void)group.run(1,
                               [&]() -> int {
                                 seen = group.find(1);
                                 throw std::runtime_error("boom");
                               }),
               std::runtime_error);
  ASSERT_NE(seen, nullptr);
  EXPECT_EQ(seen->wait().status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(group.size(), 0u);
}

TEST(SingleFlightTest, WaitForGivesUpButTheFlightGoesOn) {
  SingleFlight<int, int> group;
  auto lead = group.join(1);
  auto w = group.join(1);
  EXPECT_EQ(w.flight->wait_for(std::chrono::milliseconds(1)), nullptr);
  EXPECT_FALSE(w.flight->done());
  group.finish(1, lead.flight, 5);
  const absl::StatusOr<int>* r = w.flight->wait_for(std::chrono::seconds(10));
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(**r, 5);
}

TEST(SingleFlightTest, SupersededFlightDoesNotPublish) {
  SingleFlight<int, int> group;
  auto lead = group.join(1);
  int published = 0;
  EXPECT_TRUE(lead.flight->publish_if_current([&] { ++published; }));
  group.supersede(1);
  EXPECT_TRUE(lead.flight->superseded());
  EXPECT_FALSE(lead.flight->publish_if_current([&] { ++published; }));
  EXPECT_EQ(published, 1);
  group.finish(1, lead.flight, 1);
}

TEST(SingleFlightTest, SupersedeWaitsForAPublishInProgress) {
  SingleFlight<int, int> group;
  auto lead = group.join(1);
  std::latch in_publish(1);
  std::latch release(1);
  bool publish_done = false;
  std::thread publisher([&] {
    lead.flight->publish_if_current([&] {
      in_publish.count_down();
      release.wait();
      publish_done = true;  // written under the publish mutex
    });
  });
  in_publish.wait();
  std::atomic<bool> returned{false};
  std::thread superseder([&] {
    group.supersede_all();
    returned.store(true);
    // supersede returned: the publish that was running has finished.
    EXPECT_TRUE(publish_done);
  });
  // While the publish is held, supersede_all must not return. A version that
  // does not wait returns within microseconds, so this window catches it
  // (a passing run spends the whole window: 200 ms).
  EXPECT_FALSE(testing::eventually([&] { return returned.load(); }, std::chrono::milliseconds(200)))
      << "supersede_all returned while a publish was in progress";
  release.count_down();
  publisher.join();
  superseder.join();
  EXPECT_TRUE(returned.load());
  EXPECT_TRUE(lead.flight->superseded());
  EXPECT_FALSE(lead.flight->publish_if_current([] {})) << "a publish after supersede ran";
  group.finish(1, lead.flight, 1);
}

}  // namespace
}  // namespace larder
