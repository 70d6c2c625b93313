// SPDX-License-Identifier: Apache-2.0
//
// Loads racing a write-back put (loads.h, "Publishing"). In write-back mode a
// put reaches the store at once and the system of record later, so a load
// that reads the system of record in between reads the OLD row. Such a load
// must never store that row: not while the put is dirty (publish checks), and
// not after the flusher wrote it (the flusher supersedes the key's flights
// before the key turns clean). Found by the chaos soak: the old row was
// stored after the put's entry and served from the store after the flush.
//
// A HookStore (a MapStore whose get and put can be paused and whose gets can
// be made to miss) and latches with bounded waits place each step exactly.
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "gtest/gtest.h"
#include "larder/cache.h"
#include "larder/clock.h"
#include "larder/single_flight.h"
#include "tests/testing/fake_db.h"
#include "tests/testing/manual_executor.h"
#include "tests/testing/map_store.h"

namespace larder {
namespace {

using std::chrono::hours;
using std::chrono::seconds;

// Signal: a one-shot event with a bounded wait.
class Signal {
 public:
  void notify() {
    std::lock_guard<std::mutex> l(mu_);
    set_ = true;
    cv_.notify_all();
  }
  bool wait(std::chrono::seconds limit = seconds(20)) {
    std::unique_lock<std::mutex> l(mu_);
    return cv_.wait_for(l, limit, [&] { return set_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool set_ = false;
};

using Base = testing::MapStore<std::string, std::string>;

class HookStore : public Base {
 public:
  using Base::Base;

  // The next get announces itself on `reached`, waits for `go`, then misses.
  void pause_next_get(Signal* reached, Signal* go) {
    std::lock_guard<std::mutex> l(mu_);
    get_reached_ = reached;
    get_go_ = go;
  }
  // The next n gets miss (as if the entry had been evicted).
  void miss_next_gets(int n) { misses_left_ = n; }
  // The next put announces itself on `reached` and waits for `go`.
  void pause_next_put(Signal* reached, Signal* go) {
    std::lock_guard<std::mutex> l(mu_);
    put_reached_ = reached;
    put_go_ = go;
  }

  absl::StatusOr<std::optional<Entry<std::string>>> get(const std::string& key) override {
    Signal *reached = nullptr, *go = nullptr;
    {
      std::lock_guard<std::mutex> l(mu_);
      std::swap(reached, get_reached_);
      std::swap(go, get_go_);
    }
    if (reached != nullptr) {
      reached->notify();
      if (!go->wait()) ADD_FAILURE() << "paused get never released";
      return std::optional<Entry<std::string>>();
    }
    if (misses_left_.load() > 0) {
      --misses_left_;
      return std::optional<Entry<std::string>>();
    }
    return Base::get(key);
  }
  absl::Status put(const std::string& key, Entry<std::string> entry) override {
    Signal *reached = nullptr, *go = nullptr;
    {
      std::lock_guard<std::mutex> l(mu_);
      std::swap(reached, put_reached_);
      std::swap(go, put_go_);
    }
    if (reached != nullptr) {
      reached->notify();
      if (!go->wait()) ADD_FAILURE() << "paused put never released";
    }
    return Base::put(key, std::move(entry));
  }
  absl::Status fill(const std::string& key, Entry<std::string> entry) override {
    return Base::put(key, std::move(entry));  // a fill is not paused
  }

 private:
  std::mutex mu_;
  Signal *get_reached_ = nullptr, *get_go_ = nullptr;
  Signal *put_reached_ = nullptr, *put_go_ = nullptr;
  std::atomic<int> misses_left_{0};
};

using Db = testing::FakeDb<std::string, std::string>;

class CacheWriteBackRaceTest : public ::testing::Test {
 protected:
  std::shared_ptr<ManualClock> clock =
      std::make_shared<ManualClock>(from_unix_millis(1'700'000'000'000));
  std::shared_ptr<HookStore> store = std::make_shared<HookStore>(clock);
  std::shared_ptr<testing::ManualExecutor> executor = std::make_shared<testing::ManualExecutor>();
  Db db;

  CacheOptions<std::string, std::string> options() {
    CacheOptions<std::string, std::string> o;
    o.ttl = seconds(10);
    o.clock = clock;
    o.executor = executor;
    o.write_mode = WriteMode::kWriteBack;
    o.writer = db.writer(/*with_erase=*/false);
    o.write_back.delay = hours(1);  // only flush() writes
    return o;
  }
  ~CacheWriteBackRaceTest() override { executor->run_all(); }
};

// The load reads the old row after the put marked the key dirty, and stores
// it after the put's own store write: without the dirty check the store ends
// up with the old row, served as fresh once the flush made the key clean.
TEST_F(CacheWriteBackRaceTest, ALoadThatReadTheOldRowWhileDirtyDoesNotStoreIt) {
  db.set("k", "v1");
  Cache<std::string, std::string> cache(store, options());

  Signal r_in_get, r_go, p_in_put, p_go, p_done;
  store->pause_next_get(&r_in_get, &r_go);
  std::string r_got;
  std::thread reader([&] {
    // The loader reads the row (v1: the put is not flushed), then lets the
    // put's store write finish before the load publishes.
    auto loader = [&](const std::string& k) -> absl::StatusOr<std::string> {
      std::string v = db.row(k).value_or("");
      p_go.notify();
      if (!p_done.wait()) ADD_FAILURE() << "put never finished";
      return v;
    };
    absl::StatusOr<std::string> v = cache.get_or_load("k", loader);
    r_got = v.ok() ? *v : v.status().ToString();
  });
  ASSERT_TRUE(r_in_get.wait()) << "reader never reached the store";  // past its dirty check

  store->pause_next_put(&p_in_put, &p_go);
  std::thread writer([&] {
    EXPECT_TRUE(cache.put("k", "v2").ok());  // dirty, no flight to supersede, store put
    p_done.notify();
  });
  ASSERT_TRUE(p_in_put.wait()) << "put never reached the store";
  r_go.notify();  // the reader misses, leads a new flight, re-reads (miss), loads v1
  writer.join();
  reader.join();
  EXPECT_EQ(r_got, "v1");  // it began before the put returned: either value is right

  ASSERT_TRUE(cache.flush().ok());
  EXPECT_EQ(db.row("k"), "v2");
  ASSERT_TRUE(store->raw("k").has_value());
  EXPECT_EQ(store->raw("k")->value, "v2");
  absl::StatusOr<std::string> after = cache.get_or_load("k", [](const std::string&) {
    return absl::StatusOr<std::string>(absl::InternalError("no load expected"));
  });
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(*after, "v2");
}

// The load reads the old row while the key is dirty, and publishes after the
// flush made it clean: the flusher superseded the flight first.
TEST_F(CacheWriteBackRaceTest, ALoadThatReadTheOldRowBeforeTheFlushDoesNotStoreItAfter) {
  db.set("k", "v1");
  Cache<std::string, std::string> cache(store, options());
  Signal r_in_get, r_go;
  store->pause_next_get(&r_in_get, &r_go);
  std::string r_got;
  std::thread reader([&] {
    auto loader = [&](const std::string& k) -> absl::StatusOr<std::string> {
      std::string v = db.row(k).value_or("");
      EXPECT_TRUE(cache.flush().ok());  // the put reaches the db; the key turns clean
      return v;
    };
    absl::StatusOr<std::string> v = cache.get_or_load("k", loader);
    r_got = v.ok() ? *v : v.status().ToString();
  });
  ASSERT_TRUE(r_in_get.wait()) << "reader never reached the store";
  ASSERT_TRUE(cache.put("k", "v2").ok());
  store->miss_next_gets(1);  // the reader's re-read misses too (evicted)
  r_go.notify();
  reader.join();
  EXPECT_EQ(r_got, "v1");
  EXPECT_EQ(db.row("k"), "v2");
  ASSERT_TRUE(store->raw("k").has_value());
  EXPECT_EQ(store->raw("k")->value, "v2");
}

// A write supersedes a flight and takes it out of the table: a caller that
// comes after the write leads a new flight rather than getting the old
// flight's (older) result.
TEST(SingleFlightSupersede, ACallerAfterTheWriteLeadsANewFlight) {
  SingleFlight<std::string, std::string> group;
  auto first = group.join("k");
  ASSERT_TRUE(first.leader);
  group.supersede("k");
  auto second = group.join("k");
  EXPECT_TRUE(second.leader);
  EXPECT_NE(first.flight, second.flight);
  EXPECT_TRUE(first.flight->superseded());
  EXPECT_FALSE(second.flight->superseded());
  group.finish("k", first.flight, std::string("old"));  // does not remove the new one
  auto third = group.join("k");
  EXPECT_FALSE(third.leader);
  EXPECT_EQ(third.flight, second.flight);
  group.finish("k", second.flight, std::string("new"));
  EXPECT_EQ(group.size(), 0u);
}

}  // namespace
}  // namespace larder
