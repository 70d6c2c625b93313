// SPDX-License-Identifier: Apache-2.0
//
// Helpers for the PostgreSQL tests (tests/pg): the server scripts/test.sh
// started (LARDER_TEST_PG_URI; LARDER_TEST_REQUIRE_PG=1 makes a test fail
// instead of skip without it), and TestSchema, a schema of the test's own
// (tables from examples/catalog/schema.sql plus seeded rows), dropped at the
// end, so tests running in parallel (ctest -j) never see each other's rows.
#ifndef LARDER_TESTS_PG_PG_TEST_UTIL_H_
#define LARDER_TESTS_PG_PG_TEST_UTIL_H_

#include <unistd.h>

#include <cstdlib>
#include <string>

#include "catalog.h"
#include "gtest/gtest.h"

namespace larder::testing {

inline std::string pg_env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? std::string() : std::string(v);
}
inline bool pg_required() { return pg_env("LARDER_TEST_REQUIRE_PG") == "1"; }

// pg_admin: runs one statement on its own connection.
inline absl::Status pg_admin(const std::string& conninfo, const std::string& sql) {
  catalog::PgPool pool({.conninfo = conninfo, .size = 1});
  return pool
      .run<bool>("admin", catalog::PgPool::Retry::kNo,
                 [&](pqxx::connection& c) -> absl::StatusOr<bool> {
                   pqxx::nontransaction(c).exec(sql);
                   return true;
                 })
      .status();
}

// TestSchema: CREATE SCHEMA <unique>, schema.sql, catalog_seed(products,
// orders, items); DROP SCHEMA ... CASCADE in the destructor.
class TestSchema {
 public:
  TestSchema(std::string conninfo, int products, int orders, int items)
      : conninfo_(std::move(conninfo)) {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    name_ = "t_" + std::to_string(::getpid()) + "_" + info->name();
    for (char& c : name_) c = std::isalnum(static_cast<unsigned char>(c)) ? std::tolower(c) : '_';
    (void)pg_admin(conninfo_, "DROP SCHEMA IF EXISTS " + name_ + " CASCADE");
    absl::Status s = pg_admin(conninfo_, "CREATE SCHEMA " + name_);
    if (s.ok()) {
      catalog::PgPool pool(
          {.conninfo = conninfo_, .size = 1, .on_connect = [this](pqxx::connection& c) {
             pqxx::nontransaction(c).exec("SET search_path TO " + name_);
           }});
      s = catalog::db::run_sql_file(pool, std::string(LARDER_CATALOG_SQL_DIR) + "/schema.sql");
      if (s.ok()) {
        s = pool.run<bool>("seed", catalog::PgPool::Retry::kNo,
                           [&](pqxx::connection& c) -> absl::StatusOr<bool> {
                             pqxx::nontransaction(c).exec(
                                 "SELECT catalog_seed(" + std::to_string(products) + "," +
                                 std::to_string(orders) + "," + std::to_string(items) + ")");
                             return true;
                           })
                .status();
      }
    }
    status_ = s;
  }
  ~TestSchema() { (void)pg_admin(conninfo_, "DROP SCHEMA IF EXISTS " + name_ + " CASCADE"); }
  const std::string& name() const { return name_; }
  const absl::Status& status() const { return status_; }
  catalog::CatalogOptions options() const {
    return catalog::CatalogOptions{.conninfo = conninfo_, .search_path = name_};
  }

 private:
  std::string conninfo_, name_;
  absl::Status status_;
};

}  // namespace larder::testing

// LARDER_REQUIRE_PG_OR_SKIP(uri): binds std::string `uri` to LARDER_TEST_PG_URI,
// or skips with a clear message (fails under LARDER_TEST_REQUIRE_PG=1).
#define LARDER_REQUIRE_PG_OR_SKIP(uri)                                              \
  const std::string uri = ::larder::testing::pg_env("LARDER_TEST_PG_URI");          \
  if (uri.empty()) {                                                                \
    if (::larder::testing::pg_required()) {                                         \
      FAIL() << "LARDER_TEST_REQUIRE_PG=1 but LARDER_TEST_PG_URI unset";            \
    }                                                                               \
    GTEST_SKIP() << "no PostgreSQL: set LARDER_TEST_PG_URI (scripts/test.sh does)"; \
  }

#endif  // LARDER_TESTS_PG_PG_TEST_UTIL_H_
