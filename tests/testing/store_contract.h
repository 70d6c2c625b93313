// SPDX-License-Identifier: Apache-2.0
//
// The Store contract (include/larder/store.h), written once as a typed test
// suite and instantiated for every store.
//
// To run it for a store, define a factory and instantiate:
//
//   struct MyStoreFactory {
//     // A fresh, empty store over K = V = std::string reading time from clock.
//     static std::shared_ptr<larder::Store<std::string, std::string>> make(
//         std::shared_ptr<larder::Clock> clock);
//   };
//   using Factories = ::testing::Types<MyStoreFactory>;
//   INSTANTIATE_TYPED_TEST_SUITE_P(MyStore, StoreContractTest, Factories);
//
// A factory may call GTEST_SKIP() and return null (e.g. no Redis server given).
// Time starts at a wall-clock-like instant so remote stores see sane PX values.
#ifndef LARDER_TESTS_TESTING_STORE_CONTRACT_H_
#define LARDER_TESTS_TESTING_STORE_CONTRACT_H_

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "larder/clock.h"
#include "larder/store.h"

namespace larder::testing {

template <class Factory>
class StoreContractTest : public ::testing::Test {
 protected:
  using S = Store<std::string, std::string>;

  void SetUp() override {
    clock_ = std::make_shared<ManualClock>(std::chrono::system_clock::now());
    store_ = Factory::make(clock_);
    if (store_ == nullptr) GTEST_SKIP() << "store not available";
  }

  Entry<std::string> entry(std::string v, std::chrono::milliseconds fresh,
                           std::chrono::milliseconds stale) {
    const TimePoint now = clock_->now();
    return Entry<std::string>{std::move(v), now + fresh, now + stale};
  }

  std::shared_ptr<ManualClock> clock_;
  std::shared_ptr<S> store_;
};

TYPED_TEST_SUITE_P(StoreContractTest);

using std::chrono::milliseconds;
using std::chrono::seconds;

TYPED_TEST_P(StoreContractTest, MissThenHit) {
  auto got = this->store_->get("k");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_FALSE(got->has_value());
  ASSERT_TRUE(this->store_->put("k", this->entry("v", seconds(10), seconds(20))).ok());
  got = this->store_->get("k");
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ((*got)->value, "v");
}

TYPED_TEST_P(StoreContractTest, KeepsBothInstantsToTheMillisecond) {
  const auto e = this->entry("v", milliseconds(1500), milliseconds(4500));
  ASSERT_TRUE(this->store_->put("k", e).ok());
  auto got = this->store_->get("k");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ(to_unix_millis((*got)->fresh_until), to_unix_millis(e.fresh_until));
  EXPECT_EQ(to_unix_millis((*got)->stale_until), to_unix_millis(e.stale_until));
}

TYPED_TEST_P(StoreContractTest, PutReplaces) {
  ASSERT_TRUE(this->store_->put("k", this->entry("a", seconds(10), seconds(10))).ok());
  ASSERT_TRUE(this->store_->put("k", this->entry("b", seconds(10), seconds(10))).ok());
  auto got = this->store_->get("k");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->value, "b");
}

TYPED_TEST_P(StoreContractTest, EraseRemovesAndAbsentIsOk) {
  EXPECT_TRUE(this->store_->erase("absent").ok());
  ASSERT_TRUE(this->store_->put("k", this->entry("v", seconds(10), seconds(10))).ok());
  ASSERT_TRUE(this->store_->erase("k").ok());
  auto got = this->store_->get("k");
  ASSERT_TRUE(got.ok());
  EXPECT_FALSE(got->has_value());
}

TYPED_TEST_P(StoreContractTest, StaleIsReturnedExpiredIsNot) {
  ASSERT_TRUE(this->store_->put("k", this->entry("v", seconds(1), seconds(3))).ok());
  this->clock_->advance(seconds(2));  // stale
  auto got = this->store_->get("k");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->age(this->clock_->now()), Age::kStale);
  this->clock_->advance(seconds(2));  // expired
  got = this->store_->get("k");
  ASSERT_TRUE(got.ok());
  EXPECT_FALSE(got->has_value());
}

TYPED_TEST_P(StoreContractTest, BatchFormsMatchSingleForms) {
  std::vector<std::pair<std::string, Entry<std::string>>> items;
  for (int i = 0; i < 10; ++i) {
    items.emplace_back("k" + std::to_string(i),
                       this->entry("v" + std::to_string(i), seconds(10), seconds(10)));
  }
  ASSERT_TRUE(this->store_->put_many(items).ok());
  std::vector<std::string> keys{"k0", "missing", "k9", "k5"};
  auto got = this->store_->get_many(keys);
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->size(), 4u);
  EXPECT_EQ((*got)[0]->value, "v0");
  EXPECT_FALSE((*got)[1].has_value());
  EXPECT_EQ((*got)[2]->value, "v9");
  EXPECT_EQ((*got)[3]->value, "v5");
  std::vector<std::string> gone{"k0", "k5", "never"};
  ASSERT_TRUE(this->store_->erase_many(gone).ok());
  got = this->store_->get_many(keys);
  ASSERT_TRUE(got.ok());
  EXPECT_FALSE((*got)[0].has_value());
  EXPECT_TRUE((*got)[2].has_value());
  EXPECT_FALSE((*got)[3].has_value());
  EXPECT_TRUE(this->store_->get_many(std::span<const std::string>()).ok());
}

TYPED_TEST_P(StoreContractTest, BinaryKeysAndValues) {
  const std::string key("k\0\xff\n", 4);
  const std::string value("\0\r\n\xfe", 4);
  ASSERT_TRUE(this->store_->put(key, this->entry(value, seconds(10), seconds(10))).ok());
  auto got = this->store_->get(key);
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->value, value);
  got = this->store_->get(std::string("k\0\xff", 3));
  ASSERT_TRUE(got.ok());
  EXPECT_FALSE(got->has_value());
}

TYPED_TEST_P(StoreContractTest, ConcurrentWritersAndReaders) {
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([this, t] {
      for (int i = 0; i < 200; ++i) {
        const std::string k = "c" + std::to_string(i % 16);
        if ((i + t) % 3 == 0) {
          EXPECT_TRUE(this->store_->put(k, this->entry(k, seconds(10), seconds(10))).ok());
        } else if ((i + t) % 7 == 0) {
          EXPECT_TRUE(this->store_->erase(k).ok());
        } else {
          auto got = this->store_->get(k);
          ASSERT_TRUE(got.ok());
          if (got->has_value()) {
            EXPECT_EQ((*got)->value, k);  // never a torn value
          }
        }
      }
    });
  }
  for (auto& t : threads) t.join();
}

REGISTER_TYPED_TEST_SUITE_P(StoreContractTest, MissThenHit, KeepsBothInstantsToTheMillisecond,
                            PutReplaces, EraseRemovesAndAbsentIsOk,
                            StaleIsReturnedExpiredIsNot, BatchFormsMatchSingleForms,
                            BinaryKeysAndValues, ConcurrentWritersAndReaders);

}  // namespace larder::testing

#endif  // LARDER_TESTS_TESTING_STORE_CONTRACT_H_
