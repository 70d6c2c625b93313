// SPDX-License-Identifier: Apache-2.0
//
// The Store interface itself: Entry ages, the default batch forms, and the
// contract suite run against the reference MapStore.
#include "larder/store.h"

#include "gtest/gtest.h"
#include "tests/testing/map_store.h"
#include "tests/testing/store_contract.h"

namespace larder {
namespace {

using std::chrono::seconds;

TEST(EntryTest, AgesAtTheInstants) {
  const TimePoint t0 = from_unix_millis(1'000'000);
  Entry<int> e{1, t0 + seconds(10), t0 + seconds(20)};
  EXPECT_EQ(e.age(t0), Age::kFresh);
  EXPECT_EQ(e.age(t0 + seconds(10) - std::chrono::nanoseconds(1)), Age::kFresh);
  EXPECT_EQ(e.age(t0 + seconds(10)), Age::kStale);
  EXPECT_EQ(e.age(t0 + seconds(20) - std::chrono::nanoseconds(1)), Age::kStale);
  EXPECT_EQ(e.age(t0 + seconds(20)), Age::kExpired);
}

TEST(StoreTest, DefaultGetManyFailsWholeOnFirstError) {
  testing::MapStore<std::string, int> store;
  // MapStore overrides get_many; call the base default explicitly.
  auto now = system_clock()->now();
  ASSERT_TRUE(store.put("a", {1, now + seconds(9), now + seconds(9)}).ok());
  std::vector<std::string> keys{"a", "b"};
  auto ok = store.Store<std::string, int>::get_many(keys);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ((*ok)[0]->value, 1);
  EXPECT_FALSE((*ok)[1].has_value());
  store.fail_next(1, absl::UnavailableError("down"));
  auto bad = store.Store<std::string, int>::get_many(keys);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kUnavailable);
}

TEST(StoreTest, DefaultClearIsUnimplemented) {
  struct Minimal : Store<int, int> {
    absl::StatusOr<std::optional<Entry<int>>> get(const int&) override { return std::nullopt; }
    absl::Status put(const int&, Entry<int>) override { return absl::OkStatus(); }
    absl::Status erase(const int&) override { return absl::OkStatus(); }
  } s;
  EXPECT_EQ(s.clear().code(), absl::StatusCode::kUnimplemented);
  EXPECT_EQ(s.counters().hits, 0u);
}

struct MapStoreFactory {
  static std::shared_ptr<Store<std::string, std::string>> make(std::shared_ptr<Clock> clock) {
    return std::make_shared<testing::MapStore<std::string, std::string>>(std::move(clock));
  }
};

}  // namespace
namespace testing {
using MapStoreFactories = ::testing::Types<MapStoreFactory>;
INSTANTIATE_TYPED_TEST_SUITE_P(MapStore, StoreContractTest, MapStoreFactories);
}  // namespace testing
}  // namespace larder
