// SPDX-License-Identifier: Apache-2.0
//
// catalog: the catalog example end to end against a real PostgreSQL. It makes
// a schema of its own, loads schema.sql and seed.sql into it, then shows (and
// checks) each pattern, counting the queries PostgreSQL really received:
//   product(1) twice                     1 query
//   order_page(1) (100 items) cold/warm  1 product query, then 0 (N+1: 100)
//   set_price                            the row and the cache agree
//   record_view x3 + flush               3 views in PostgreSQL
// and drops its schema at the end.
//
// Run: catalog --conninfo=postgresql://user@127.0.0.1:5432/db [--store=local|tiered]
//              [--redis=127.0.0.1:6379] [--sql-dir=examples/catalog]
//      catalog --smoke   (ctest: conninfo from LARDER_TEST_PG_URI, Redis from
//                         LARDER_TEST_REDIS_HOST/PORT; exits 77, "skipped",
//                         without them unless LARDER_TEST_REQUIRE_PG=1)
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "catalog.h"

namespace {

const char* env(const char* name) {
  const char* v = std::getenv(name);  // NOLINT(concurrency-mt-unsafe): main(), before any thread
  return v != nullptr && *v != '\0' ? v : nullptr;
}

int failures = 0;
void check(bool ok, const std::string& what) {
  std::printf("  [%s] %s\n", ok ? "ok" : "FAILED", what.c_str());
  if (!ok) ++failures;
}

// Makes (or drops) the example's schema on a connection of its own.
absl::Status admin(const std::string& conninfo, const std::string& sql) {
  catalog::PgPool pool({.conninfo = conninfo, .size = 1});
  return pool
      .run<bool>("admin", catalog::PgPool::Retry::kNo,
                 [&](pqxx::connection& c) -> absl::StatusOr<bool> {
                   pqxx::nontransaction(c).exec(sql);
                   return true;
                 })
      .status();
}

}  // namespace

int main(int argc, char** argv) {
  std::string conninfo, store = "local", redis, sql_dir = LARDER_CATALOG_SQL_DIR;
  bool smoke = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    auto val = [&](std::string_view flag) { return std::string(a.substr(flag.size())); };
    if (a == "--smoke")
      smoke = true;
    else if (a.starts_with("--conninfo="))
      conninfo = val("--conninfo=");
    else if (a.starts_with("--store="))
      store = val("--store=");
    else if (a.starts_with("--redis="))
      redis = val("--redis=");
    else if (a.starts_with("--sql-dir="))
      sql_dir = val("--sql-dir=");
    else {
      std::fprintf(stderr, "unknown argument %s (see the comment at the top of main.cc)\n",
                   argv[i]);
      return 2;
    }
  }
  if (store != "local" && store != "tiered") {
    std::fprintf(stderr, "--store must be local or tiered\n");
    return 2;
  }
  if (smoke) {
    const bool required =
        env("LARDER_TEST_REQUIRE_PG") && std::string(env("LARDER_TEST_REQUIRE_PG")) == "1";
    if (env("LARDER_TEST_PG_URI") == nullptr) {
      std::printf("%s: no PostgreSQL: set LARDER_TEST_PG_URI (scripts/test.sh does)\n",
                  required ? "FAILED" : "skipped");
      return required ? 1 : 77;
    }
    conninfo = env("LARDER_TEST_PG_URI");
    if (store == "tiered") {
      if (env("LARDER_TEST_REDIS_HOST") == nullptr || env("LARDER_TEST_REDIS_PORT") == nullptr) {
        std::printf("skipped: no Redis: set LARDER_TEST_REDIS_HOST/PORT\n");
        return 77;
      }
      redis = std::string(env("LARDER_TEST_REDIS_HOST")) + ":" + env("LARDER_TEST_REDIS_PORT");
    }
  }
  if (conninfo.empty()) {
    std::fprintf(stderr, "--conninfo is required\n");
    return 2;
  }
  if (store == "tiered" && redis.empty()) redis = "127.0.0.1:6379";

  const std::string schema = "catalog_example_" + std::to_string(::getpid());
  if (absl::Status s = admin(conninfo, "CREATE SCHEMA " + schema); !s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 1;
  }
  {
    catalog::CatalogOptions o{.conninfo = conninfo, .search_path = schema};
    if (store == "tiered") {
      o.redis_host = redis.substr(0, redis.rfind(':'));
      o.redis_port = std::atoi(redis.substr(redis.rfind(':') + 1).c_str());
      o.redis_prefix = "catalog-example:" + std::to_string(::getpid()) + ":";
    }
    catalog::Catalog cat(o);
    catalog::PgPool& pool = cat.pool();
    for (const char* f : {"/schema.sql", "/seed.sql"}) {
      if (absl::Status s = catalog::db::run_sql_file(pool, sql_dir + f); !s.ok()) {
        std::fprintf(stderr, "%s\n", s.ToString().c_str());
        (void)admin(conninfo, "DROP SCHEMA " + schema + " CASCADE");
        return 1;
      }
    }
    std::printf("catalog over %s store, PostgreSQL schema %s\n", store.c_str(), schema.c_str());

    pool.reset_counts();
    absl::StatusOr<catalog::Product> p1 = cat.product(1);
    absl::StatusOr<catalog::Product> p2 = cat.product(1);
    check(p1.ok() && p2.ok() && *p1 == *p2,
          "product(1) twice: " + (p1.ok()
                                      ? p1->name + ", " + std::to_string(p1->price_cents) + " cents"
                                      : p1.status().ToString()));
    check(pool.queries("products") == 1,
          "... cost " + std::to_string(pool.queries("products")) + " product query (want 1)");

    pool.reset_counts();
    absl::StatusOr<catalog::OrderPage> naive = catalog::db::order_page_n_plus_1(pool, 2);
    const std::uint64_t naive_q = pool.queries("products");
    pool.reset_counts();
    absl::StatusOr<catalog::OrderPage> cold = cat.order_page(2);
    const std::uint64_t cold_q = pool.queries("products");
    pool.reset_counts();
    absl::StatusOr<catalog::OrderPage> warm = cat.order_page(2);
    const std::uint64_t warm_q = pool.queries("products");
    check(naive.ok() && cold.ok() && warm.ok() && cold->lines.size() == 100 &&
              naive->total_cents == cold->total_cents && cold->total_cents == warm->total_cents,
          "order_page(2): 100 lines, the same total as the N+1 page");
    check(naive_q == 100 && cold_q == 1 && warm_q == 0,
          "product queries: N+1 " + std::to_string(naive_q) + ", get_many cold " +
              std::to_string(cold_q) + ", warm " + std::to_string(warm_q) + " (want 100, 1, 0)");

    absl::Status sp = cat.set_price(1, 4242);
    absl::StatusOr<catalog::Product> row = catalog::db::load_product(pool, 1);
    std::optional<catalog::Product> cached = cat.products().get_if_present(1);
    check(sp.ok() && row.ok() && row->price_cents == 4242 && row->version == 2 && cached &&
              *cached == *row,
          "set_price(1, 4242): row and cache at 4242 cents, version 2");

    for (int i = 0; i < 3; ++i) (void)cat.record_view(7);
    absl::Status fl = cat.flush_views();
    absl::StatusOr<catalog::ViewCount> v = catalog::db::load_views(pool, 7);
    check(fl.ok() && v.ok() && v->views == 3 && v->version == 3,
          "record_view(7) x3 + flush: PostgreSQL has " +
              (v.ok() ? std::to_string(v->views) : v.status().ToString()) + " views");
    const larder::CacheStats s = cat.products().stats();
    std::printf("product cache: hits=%llu misses=%llu hit_ratio=%.2f\n",
                static_cast<unsigned long long>(s.hits), static_cast<unsigned long long>(s.misses),
                s.hit_ratio());
  }
  (void)admin(conninfo, "DROP SCHEMA " + schema + " CASCADE");
  std::printf("%s\n", failures == 0 ? "all checks passed" : "SOME CHECKS FAILED");
  return failures == 0 ? 0 : 1;
}
