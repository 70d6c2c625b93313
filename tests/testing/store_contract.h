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
// The concurrent test checks that reads are monotonic: once a reader has seen
// one writer's write, it never sees that writer's older writes again.
// Time starts at a wall-clock-like instant so remote stores see sane PX values.
#ifndef LARDER_TESTS_TESTING_STORE_CONTRACT_H_
#define LARDER_TESTS_TESTING_STORE_CONTRACT_H_

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
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
    if (store_ == nullptr) {
      // A factory that failed (e.g. LARDER_TEST_REQUIRE_REDIS=1 and no server
      // given) must stop the test: gtest runs the body after a skip that
      // follows a failure, which would dereference the null store.
      if (HasFailure()) FAIL() << "store not available";
      GTEST_SKIP() << "store not available";
    }
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

// Writers put "<writer>:<seq>" (seq increasing per writer) to shared keys,
// with some erases, and to a key of their own; readers run alongside. What
// would show a lost, reordered or torn update:
//   * a reader sees a value that is not "<writer>:<seq>" (torn), or, for one
//     key, a writer's seq lower than one it already saw (an older write came
//     back after a newer one of the same writer was visible);
//   * afterwards, a writer's own key does not hold its last seq (lost);
//   * a shared key holds a value that is not some writer's LAST operation on
//     it (its last put, with no later erase by that writer), or is absent
//     while no writer's last operation on it was an erase.
TYPED_TEST_P(StoreContractTest, ConcurrentWritersAndReaders) {
  constexpr int kWriters = 4, kReaders = 2, kOps = 200, kKeys = 16;
  struct Last {
    int seq = -1;         // last put's seq, -1: none
    bool erased = false;  // the writer's last operation on the key was an erase
  };
  std::vector<std::vector<Last>> last(kWriters, std::vector<Last>(kKeys));
  auto key = [](int k) { return "c" + std::to_string(k); };
  auto parse = [](const std::string& v, int* w, int* seq) {
    return std::sscanf(v.c_str(), "%d:%d", w, seq) == 2 && *w >= 0 && *w < kWriters &&
           v == std::to_string(*w) + ":" + std::to_string(*seq);
  };
  std::atomic<int> writing{kWriters};
  std::vector<std::thread> threads;
  for (int t = 0; t < kWriters; ++t) {
    threads.emplace_back([&, t] {
      const std::string own = "own" + std::to_string(t);
      for (int i = 0; i < kOps; ++i) {
        const std::string v = std::to_string(t) + ":" + std::to_string(i);
        const int k = (i * 5 + t) % kKeys;
        if ((i + t) % 7 == 0) {
          EXPECT_TRUE(this->store_->erase(key(k)).ok());
          last[t][k].erased = true;
        } else {
          EXPECT_TRUE(this->store_->put(key(k), this->entry(v, seconds(10), seconds(10))).ok());
          last[t][k] = Last{i, false};
        }
        EXPECT_TRUE(this->store_->put(own, this->entry(v, seconds(10), seconds(10))).ok());
      }
      writing.fetch_sub(1);
    });
  }
  for (int r = 0; r < kReaders; ++r) {
    threads.emplace_back([&] {
      std::vector<std::vector<int>> seen(kKeys, std::vector<int>(kWriters, -1));
      while (writing.load() > 0) {
        for (int k = 0; k < kKeys; ++k) {
          auto got = this->store_->get(key(k));
          ASSERT_TRUE(got.ok()) << got.status();
          if (!got->has_value()) continue;
          int w = 0, seq = 0;
          ASSERT_TRUE(parse((*got)->value, &w, &seq)) << "torn value " << (*got)->value;
          EXPECT_GE(seq, seen[k][w]) << key(k) << ": writer " << w << "'s write " << seq
                                     << " read after its later write " << seen[k][w];
          seen[k][w] = std::max(seen[k][w], seq);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int t = 0; t < kWriters; ++t) {
    auto got = this->store_->get("own" + std::to_string(t));
    ASSERT_TRUE(got.ok() && got->has_value()) << "writer " << t << "'s own key is gone";
    EXPECT_EQ((*got)->value, std::to_string(t) + ":" + std::to_string(kOps - 1)) << "lost update";
  }
  for (int k = 0; k < kKeys; ++k) {
    auto got = this->store_->get(key(k));
    ASSERT_TRUE(got.ok());
    if (got->has_value()) {
      int w = 0, seq = 0;
      ASSERT_TRUE(parse((*got)->value, &w, &seq)) << (*got)->value;
      EXPECT_TRUE(!last[w][k].erased && last[w][k].seq == seq)
          << key(k) << " holds " << (*got)->value << ", not writer " << w << "'s last operation";
    } else {
      bool some_erase_last = false;
      for (int t = 0; t < kWriters; ++t) some_erase_last |= last[t][k].erased;
      EXPECT_TRUE(some_erase_last) << key(k) << " is absent but no writer erased it last";
    }
  }
}

REGISTER_TYPED_TEST_SUITE_P(StoreContractTest, MissThenHit, KeepsBothInstantsToTheMillisecond,
                            PutReplaces, EraseRemovesAndAbsentIsOk, StaleIsReturnedExpiredIsNot,
                            BatchFormsMatchSingleForms, BinaryKeysAndValues,
                            ConcurrentWritersAndReaders);

}  // namespace larder::testing

#endif  // LARDER_TESTS_TESTING_STORE_CONTRACT_H_
