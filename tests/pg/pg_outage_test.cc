// SPDX-License-Identifier: Apache-2.0
//
// PostgreSQL goes down mid-test and comes back. It runs on a server of its
// own (LARDER_TEST_PG_OUTAGE_URI; LARDER_TEST_PG_OUTAGE_CTL runs pg_ctl on
// it), which scripts/test.sh starts for this test alone, so stopping it never
// disturbs the tests running in parallel. While it is down: cached products
// are served stale (stale_if_error), a product never cached fails with
// kUnavailable naming PostgreSQL, set_price fails and changes nothing. After
// the restart everything works again with no user action (the pool drops
// its broken connections and opens new ones).
#include <chrono>
#include <cstdlib>
#include <string>

#include "gtest/gtest.h"
#include "larder/clock.h"
#include "tests/pg/pg_test_util.h"

namespace {

using catalog::Product;
using larder::testing::pg_env;
using larder::testing::TestSchema;
using namespace std::chrono_literals;

// Restarts the server if the test stopped it and failed before restarting.
struct ServerGuard {
  std::string ctl;
  bool stopped = false;
  int stop() {
    stopped = true;
    return std::system((ctl + " stop -m fast -w -t 60 >/dev/null").c_str());
  }
  int start() {
    const int rc = std::system((ctl + " start -w -t 60 >/dev/null").c_str());
    if (rc == 0) stopped = false;
    return rc;
  }
  ~ServerGuard() {
    if (stopped) (void)start();
  }
};

TEST(PgOutageTest, StaleIfErrorServesCachedProductsAndEverythingRecoversAfterRestart) {
  const std::string uri = pg_env("LARDER_TEST_PG_OUTAGE_URI");
  const std::string ctl = pg_env("LARDER_TEST_PG_OUTAGE_CTL");
  if (uri.empty() || ctl.empty()) {
    if (larder::testing::pg_required()) {
      FAIL() << "LARDER_TEST_REQUIRE_PG=1 but LARDER_TEST_PG_OUTAGE_URI/_CTL unset";
    }
    GTEST_SKIP() << "no PostgreSQL of its own to stop: set LARDER_TEST_PG_OUTAGE_URI and "
                    "LARDER_TEST_PG_OUTAGE_CTL (scripts/test.sh does)";
  }
  TestSchema schema(uri, 50, 1, 5);
  ASSERT_TRUE(schema.status().ok()) << schema.status();
  auto clock = std::make_shared<larder::ManualClock>();
  catalog::CatalogOptions o = schema.options();
  o.clock = clock;
  o.ttl = 10s;
  o.ttl_jitter = 0;
  o.stale_while_revalidate = 0s;
  o.stale_if_error = 1h;
  catalog::Catalog cat(o);

  std::vector<Product> before;
  for (int id = 1; id <= 5; ++id) {
    absl::StatusOr<Product> p = cat.product(id);
    ASSERT_TRUE(p.ok()) << p.status();
    before.push_back(*p);
  }
  clock->advance(11s);  // every product is now past its ttl: a read asks PostgreSQL

  ServerGuard server{ctl};
  ASSERT_EQ(server.stop(), 0) << "pg_ctl stop failed";

  for (int id = 1; id <= 5; ++id) {
    absl::StatusOr<Product> p = cat.product(id);
    ASSERT_TRUE(p.ok()) << "product " << id << " while PostgreSQL is down: " << p.status();
    EXPECT_EQ(*p, before[id - 1]);
  }
  EXPECT_GE(cat.products().stats().stale_hits, 5u);
  absl::StatusOr<Product> fresh = cat.product(6);  // never cached: nothing to fall back on
  EXPECT_TRUE(absl::IsUnavailable(fresh.status())) << fresh.status();
  EXPECT_NE(fresh.status().message().find("postgres"), std::string_view::npos) << fresh.status();
  const absl::Status sp = cat.set_price(1, 1);
  EXPECT_TRUE(absl::IsUnavailable(sp)) << sp;
  absl::StatusOr<Product> still = cat.product(1);
  ASSERT_TRUE(still.ok()) << still.status();
  EXPECT_EQ(*still, before[0]) << "a failed write-through changed the cache";

  ASSERT_EQ(server.start(), 0) << "pg_ctl start failed";
  clock->advance(2s);  // past error_backoff: the cache asks PostgreSQL again

  absl::StatusOr<Product> p6 = cat.product(6);
  ASSERT_TRUE(p6.ok()) << "after the restart: " << p6.status();
  EXPECT_EQ(p6->id, 6);
  ASSERT_TRUE(cat.set_price(1, 4321).ok());
  absl::StatusOr<Product> p1 = cat.product(1);
  ASSERT_TRUE(p1.ok());
  EXPECT_EQ(p1->price_cents, 4321);
  EXPECT_EQ(p1->version, before[0].version + 1);
  absl::StatusOr<catalog::OrderPage> page = cat.order_page(1);
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_EQ(page->lines.size(), 5u);
  ASSERT_TRUE(cat.record_view(3).ok());
  ASSERT_TRUE(cat.flush_views().ok());
}

}  // namespace
