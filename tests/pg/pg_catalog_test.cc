// SPDX-License-Identifier: Apache-2.0
//
// The catalog example against a real PostgreSQL: the N+1 page, a stampede on
// one expired product, and write-through under concurrency. Queries are
// counted by PgPool (one per statement sent), never estimated.
#include <atomic>
#include <barrier>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "larder/clock.h"
#include "tests/pg/pg_test_util.h"

namespace {

using catalog::Catalog;
using catalog::Product;
using larder::testing::TestSchema;
using namespace std::chrono_literals;

TEST(PgCatalogTest, OrderPageIsOneProductQueryColdAndNoneWarm) {
  LARDER_REQUIRE_PG_OR_SKIP(uri);
  TestSchema schema(uri, 1000, 3, 100);
  ASSERT_TRUE(schema.status().ok()) << schema.status();
  Catalog cat(schema.options());
  catalog::PgPool& pool = cat.pool();

  absl::StatusOr<catalog::OrderPage> naive = catalog::db::order_page_n_plus_1(pool, 3);
  ASSERT_TRUE(naive.ok()) << naive.status();
  EXPECT_EQ(pool.queries("products"), 100u) << "the uncached page is the N+1";

  pool.reset_counts();
  absl::StatusOr<catalog::OrderPage> cold = cat.order_page(3);
  ASSERT_TRUE(cold.ok()) << cold.status();
  ASSERT_EQ(cold->lines.size(), 100u);
  EXPECT_EQ(cold->total_cents, naive->total_cents);
  EXPECT_EQ(pool.queries("products"), 1u) << "cold: one batch query for 100 products";
  EXPECT_EQ(pool.queries("order_items"), 1u);

  pool.reset_counts();
  absl::StatusOr<catalog::OrderPage> warm = cat.order_page(3);
  ASSERT_TRUE(warm.ok()) << warm.status();
  EXPECT_EQ(warm->total_cents, naive->total_cents);
  EXPECT_EQ(pool.queries("products"), 0u) << "warm: every product from the cache";

  // 10 products dropped from the cache: still one query, for those 10.
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(cat.products().invalidate(cold->lines[i * 10].product.id).ok());
  }
  pool.reset_counts();
  absl::StatusOr<catalog::OrderPage> partial = cat.order_page(3);
  ASSERT_TRUE(partial.ok()) << partial.status();
  EXPECT_EQ(pool.queries("products"), 1u);
  EXPECT_EQ(cat.products().stats().loads, 2u) << "two batch loads in all (cold, then partial)";

  absl::StatusOr<catalog::OrderPage> none = cat.order_page(999);
  EXPECT_TRUE(absl::IsNotFound(none.status())) << none.status();
}

// 64 threads read one expired hot product at once: one query. The query is
// held (PgPool::on_query) until every reader has arrived, so they really race.
class PgStampedeTest : public ::testing::TestWithParam<bool> {};

TEST_P(PgStampedeTest, SixtyFourReadersOfAnExpiredProductCauseOneQuery) {
  LARDER_REQUIRE_PG_OR_SKIP(uri);
  const bool swr = GetParam();
  TestSchema schema(uri, 100, 1, 10);
  ASSERT_TRUE(schema.status().ok()) << schema.status();
  auto clock = std::make_shared<larder::ManualClock>();
  catalog::CatalogOptions o = schema.options();
  o.clock = clock;
  o.ttl = 10s;
  o.ttl_jitter = 0;
  o.stale_while_revalidate = swr ? 30s : 0s;
  o.stale_if_error = 0s;
  Catalog cat(o);
  catalog::PgPool& pool = cat.pool();
  absl::StatusOr<Product> first = cat.product(5);
  ASSERT_TRUE(first.ok()) << first.status();
  // The row changes behind the cache's back; the one query must see it.
  ASSERT_TRUE(larder::testing::pg_admin(
                  uri, "UPDATE " + schema.name() + ".products SET price_cents = 777 WHERE id = 5")
                  .ok());
  clock->advance(11s);  // past ttl

  constexpr int kThreads = 64;
  std::mutex mu;
  std::condition_variable cv;
  bool query_done = false;
  std::atomic<bool> held{false};
  std::atomic<bool> all_arrived{false};
  pool.reset_counts();
  pool.on_query = [&](std::string_view label) {
    if (label != "products" || held.exchange(true)) return;
    // Hold the one query until all 64 readers are in: joined the load
    // (swr off) or served stale (swr on). Bounded: fails below if not.
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (std::chrono::steady_clock::now() < deadline) {
      const larder::CacheStats s = cat.products().stats();
      if (swr ? s.stale_hits >= kThreads : s.coalesced >= kThreads - 1) {
        all_arrived = true;
        break;
      }
      std::this_thread::yield();
    }
  };
  pool.on_query = [&, hook = pool.on_query](std::string_view label) {
    hook(label);
    if (label == "products") {
      std::lock_guard<std::mutex> lock(mu);
      query_done = true;  // the query itself runs right after this hook
      cv.notify_all();
    }
  };

  std::barrier start(kThreads);
  std::vector<std::thread> threads;
  std::vector<std::int64_t> prices(kThreads, -1);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      absl::StatusOr<Product> p = cat.product(5);
      prices[t] = p.ok() ? p->price_cents : -1;
    });
  }
  for (std::thread& t : threads) t.join();
  {
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, 30s, [&] { return query_done; })) << "no query within 30 s";
  }
  EXPECT_TRUE(all_arrived) << "the 64 readers did not all arrive while the query was held";
  for (int t = 0; t < kThreads; ++t) {
    // swr: everyone is served the stale price at once; off: everyone waits for the new one.
    EXPECT_EQ(prices[t], swr ? first->price_cents : 777) << "reader " << t;
  }
  // swr: the background refresh stores the new row; wait for it (bounded).
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  std::optional<Product> now;
  while (std::chrono::steady_clock::now() < deadline) {
    now = cat.products().get_if_present(5);
    if (now && now->price_cents == 777) break;
    std::this_thread::yield();
  }
  ASSERT_TRUE(now && now->price_cents == 777) << "the refreshed row never reached the cache";
  absl::StatusOr<Product> after = cat.product(5);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->price_cents, 777);
  EXPECT_EQ(pool.queries("products"), 1u) << "64 readers of one expired product: one query";
}

INSTANTIATE_TEST_SUITE_P(SwrOnAndOff, PgStampedeTest, ::testing::Values(true, false),
                         [](const auto& info) { return info.param ? "Swr" : "NoSwr"; });

// 8 threads change prices of 20 hot products through write-through. Every
// set_price that returned OK bumped the row's version exactly once (none
// lost, none doubled), and afterwards every cached product equals its row.
TEST(PgCatalogTest, WriteThroughUnderConcurrencyKeepsCacheEqualToRows) {
  LARDER_REQUIRE_PG_OR_SKIP(uri);
  TestSchema schema(uri, 20, 1, 2);
  ASSERT_TRUE(schema.status().ok()) << schema.status();
  catalog::CatalogOptions o = schema.options();
  o.pool_size = 8;
  Catalog cat(o);
  constexpr int kThreads = 8, kProducts = 20;
  constexpr auto kRun = 2s;              // bounded in time ...
  constexpr int kMaxOpsPerThread = 400;  // ... and in count
  std::atomic<int> ok_count[kProducts + 1] = {};
  std::atomic<int> aborted{0}, other{0};
  std::barrier start(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(1000 + t);
      start.arrive_and_wait();
      const auto stop = std::chrono::steady_clock::now() + kRun;
      for (int i = 0; i < kMaxOpsPerThread && std::chrono::steady_clock::now() < stop; ++i) {
        const int id = 1 + static_cast<int>(rng() % kProducts);
        const absl::Status s = cat.set_price(id, static_cast<std::int64_t>(rng() % 100000));
        if (s.ok()) {
          ++ok_count[id];
        } else if (absl::IsAborted(s)) {
          ++aborted;  // lost the race 8 times in a row: nothing written
        } else {
          ++other;
          ADD_FAILURE() << s;
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  int total = 0;
  for (int id = 1; id <= kProducts; ++id) {
    absl::StatusOr<Product> row = catalog::db::load_product(cat.pool(), id);
    ASSERT_TRUE(row.ok()) << row.status();
    total += ok_count[id];
    EXPECT_EQ(row->version, 1 + ok_count[id])
        << "product " << id << ": an OK update is missing or doubled";
    std::optional<Product> cached = cat.products().get_if_present(id);
    if (cached) {
      EXPECT_EQ(*cached, *row) << "product " << id << ": cache differs from the row";
    }
    absl::StatusOr<Product> read = cat.product(id);
    ASSERT_TRUE(read.ok());
    EXPECT_EQ(*read, *row) << "product " << id;
  }
  EXPECT_GT(total, kThreads) << "too few updates went through to mean anything";
  EXPECT_EQ(other.load(), 0);
  std::printf("write-through: %d OK updates, %d gave up after 8 conflicts\n", total,
              aborted.load());
}

}  // namespace
