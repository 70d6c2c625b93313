// SPDX-License-Identifier: Apache-2.0
//
// The catalog example: larder in front of PostgreSQL, the way a service uses
// it. PostgreSQL (schema.sql) is the system of record; larder caches in front.
//
//   product(id)          cache-aside read: ttl with jitter, stale-while-
//                        revalidate (a stale product is served while one
//                        background query refreshes it), stale-if-error (a
//                        cached product is served while PostgreSQL is down).
//   order_page(order)    the classic N+1 (the order's items, then each product)
//                        cured: one items query, then Cache::get_many with ONE
//                        batch query `WHERE id = ANY($1)` for every product not
//                        cached. 100 items: 1 product query cold, 0 warm.
//   set_price(id, cents) write-through: the Writer runs `UPDATE ... SET
//                        version = version + 1 WHERE id = $1 AND version = $v`
//                        in a transaction; the cache is updated only after it
//                        committed. A version that moved meanwhile (another
//                        writer won) is kAborted: set_price re-reads and
//                        retries a few times.
//   record_view(id)      write-back: a per-product view counter, incremented
//                        in the cache (journaled before it returns) and
//                        written to PostgreSQL in batches by the flusher with
//                        `INSERT ... ON CONFLICT DO UPDATE ... WHERE
//                        product_views.version < EXCLUDED.version`: the values
//                        are absolute and versioned, so a journal replay after
//                        a crash writes the same rows again (idempotent) and
//                        never moves a row backwards.
//
// Products are cached over a LocalStore, or over TieredStore(LocalStore,
// RedisStore) shared by every instance (CatalogOptions::redis_host), chosen by
// a flag. View counters are kept in a LocalStore: each counter is incremented
// by one process (its read-modify-write is serialised per product here), so
// it has no business in a shared tier.
//
// Everything that touches larder is in catalog.cc's Catalog constructor and
// the four operations; SQL lives in the `db` functions, which the benchmark
// also calls directly (the uncached baseline).
//
// Thread-safety: every method may be called concurrently.
#ifndef LARDER_EXAMPLES_CATALOG_CATALOG_H_
#define LARDER_EXAMPLES_CATALOG_CATALOG_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "larder/cache.h"
#include "larder/codec.h"
#include "larder/local_store.h"
#include "pg_pool.h"

namespace catalog {

struct Product {
  std::int64_t id = 0;
  std::string name;
  std::int64_t price_cents = 0;
  std::int64_t version = 0;
  bool operator==(const Product&) const = default;
};

struct ViewCount {  // two integers: journaled as its bytes (kBytewiseCodec below)
  std::int64_t views = 0;
  std::int64_t version = 0;
};

struct OrderLine {
  Product product;
  int qty = 0;
};
struct OrderPage {
  std::int64_t order_id = 0;
  std::vector<OrderLine> lines;
  std::int64_t total_cents = 0;
};

// ---- SQL: the system of record, without a cache ----
namespace db {
// Prepares the statements below on a new connection (PgPoolOptions::on_connect).
void prepare(pqxx::connection& c);
// Runs a .sql file (schema.sql, seed.sql) in one transaction.
absl::Status run_sql_file(PgPool& pool, const std::string& path);
absl::StatusOr<Product> load_product(PgPool& pool, std::int64_t id);  // kNotFound
absl::StatusOr<absl::flat_hash_map<std::int64_t, Product>> load_products(
    PgPool& pool, std::span<const std::int64_t> ids);  // one query; absent ids left out
// (product_id, qty) of an order, in product order; kNotFound for no such order.
absl::StatusOr<std::vector<std::pair<std::int64_t, int>>> load_order_items(PgPool& pool,
                                                                           std::int64_t order_id);
// The N+1 page: the items, then one query per product (the baseline).
absl::StatusOr<OrderPage> order_page_n_plus_1(PgPool& pool, std::int64_t order_id);
// Sets the price of each product whose version is still p.version - 1 (and
// bumps version), in one transaction; kAborted (nothing written) if any moved.
absl::Status update_prices(PgPool& pool, std::span<const std::pair<std::int64_t, Product>> rows);
// Upserts view counters, each only over an older version (idempotent).
absl::Status upsert_views(PgPool& pool, std::span<const std::pair<std::int64_t, ViewCount>> rows);
absl::StatusOr<ViewCount> load_views(PgPool& pool, std::int64_t id);  // {0,0} when none
}  // namespace db

struct CatalogOptions {
  // libpq connection string or URI of the system of record.
  std::string conninfo;
  // SET search_path on every connection; empty: the server's default.
  std::string search_path;
  std::size_t pool_size = 8;
  // Product cache: ttl +- ttl_jitter, then served stale this long while one
  // background refresh runs, and this long when PostgreSQL fails.
  std::chrono::milliseconds ttl{std::chrono::seconds(30)};
  double ttl_jitter = 0.1;
  std::chrono::milliseconds stale_while_revalidate{std::chrono::seconds(30)};
  std::chrono::milliseconds stale_if_error{std::chrono::minutes(10)};
  std::size_t max_entries = 200'000;
  // Non-empty: products go to TieredStore(LocalStore, RedisStore) on this
  // Redis (needs larder built with Redis), keys prefixed with redis_prefix.
  std::string redis_host{};
  int redis_port = 6379;
  std::string redis_prefix = "catalog:v1:";
  // View counters: write-back journal path prefix (empty: no journal, so a
  // crash loses the increments not yet written) and how long an increment
  // may wait before the flusher writes it.
  std::string views_journal{};
  std::chrono::milliseconds views_write_delay{std::chrono::milliseconds(100)};
  std::shared_ptr<larder::Clock> clock = nullptr;  // null: the system clock
};

class Catalog {
 public:
  // Throws std::invalid_argument for bad options, std::runtime_error when the
  // views journal cannot be opened. Does not connect until the first call.
  explicit Catalog(CatalogOptions options);
  ~Catalog();

  absl::StatusOr<Product> product(std::int64_t id);
  absl::StatusOr<OrderPage> order_page(std::int64_t order_id);
  absl::Status set_price(std::int64_t id, std::int64_t cents);
  absl::Status record_view(std::int64_t id);
  absl::StatusOr<std::int64_t> views(std::int64_t id);
  absl::Status flush_views();  // every acknowledged increment into PostgreSQL

  PgPool& pool() { return *pool_; }
  larder::Cache<std::int64_t, Product>& products() { return *products_; }
  larder::Cache<std::int64_t, ViewCount>& view_counts() { return *views_; }

 private:
  CatalogOptions opt_;
  std::unique_ptr<PgPool> pool_;
  std::shared_ptr<void> redis_;  // keeps the RedisClient alive (tiered only)
  std::unique_ptr<larder::Cache<std::int64_t, Product>> products_;
  std::unique_ptr<larder::Cache<std::int64_t, ViewCount>> views_;
};

}  // namespace catalog

// Every 16-byte pattern is a valid ViewCount (two integers, no padding): the
// write-back journal may store it as its bytes.
template <>
inline constexpr bool larder::kBytewiseCodec<catalog::ViewCount> = true;

// Product's bytes for Redis: id, price_cents, version (8 bytes each, little
// endian), then the name.
template <>
struct larder::Codec<catalog::Product> {
  static void encode(const catalog::Product& p, std::string& out) {
    larder::Codec<std::int64_t>::encode(p.id, out);
    larder::Codec<std::int64_t>::encode(p.price_cents, out);
    larder::Codec<std::int64_t>::encode(p.version, out);
    out.append(p.name);
  }
  static absl::StatusOr<catalog::Product> decode(std::string_view b) {
    if (b.size() < 24) return absl::DataLossError("catalog::Product: shorter than 24 bytes");
    catalog::Product p;
    p.id = *larder::Codec<std::int64_t>::decode(b.substr(0, 8));
    p.price_cents = *larder::Codec<std::int64_t>::decode(b.substr(8, 8));
    p.version = *larder::Codec<std::int64_t>::decode(b.substr(16, 8));
    p.name = std::string(b.substr(24));
    return p;
  }
};

#endif  // LARDER_EXAMPLES_CATALOG_CATALOG_H_
