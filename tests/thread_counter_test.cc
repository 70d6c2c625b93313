// SPDX-License-Identifier: Apache-2.0
//
// ThreadCounter: exact totals with more threads than owned cells, and with
// threads that exit and hand their cells to new ones (run under TSan).
#include "larder/internal/thread_counter.h"

#include <barrier>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace larder::internal {
namespace {

TEST(ThreadCounterTest, ExactWithManyThreadsAndHandOver) {
  ThreadCounter c;
  constexpr int kThreads = ThreadCounter::kOwned + 5;  // some share the last cell
  constexpr int kAdds = 2000;
  for (int round = 0; round < 3; ++round) {  // later rounds reuse exited threads' cells
    std::barrier start(kThreads);
    std::vector<std::thread> ts;
    for (int t = 0; t < kThreads; ++t) {
      ts.emplace_back([&] {
        start.arrive_and_wait();
        for (int i = 0; i < kAdds; ++i) c.add();
      });
    }
    for (auto& t : ts) t.join();
    EXPECT_EQ(c.load(), static_cast<std::uint64_t>(round + 1) * kThreads * kAdds);
  }
}

}  // namespace
}  // namespace larder::internal
