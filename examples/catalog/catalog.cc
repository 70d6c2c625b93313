// SPDX-License-Identifier: Apache-2.0
#include "catalog.h"

#include <fstream>
#include <sstream>
#include <stdexcept>
#include <utility>

#include "larder/local_cache.h"
#if LARDER_HAS_REDIS
#include "larder/redis.h"
#endif

namespace catalog {
namespace {

using Id = std::int64_t;

// "{1,2,3}": a bigint[] literal for `= ANY($1::bigint[])` / unnest.
template <class T, class F>
std::string pg_array(std::span<const T> xs, F&& f) {
  std::string s = "{";
  for (std::size_t i = 0; i < xs.size(); ++i) {
    if (i > 0) s += ',';
    s += std::to_string(f(xs[i]));
  }
  return s + "}";
}

Product row_to_product(const pqxx::row& r) {
  return Product{r[0].as<Id>(), r[1].as<std::string>(), r[2].as<Id>(), r[3].as<Id>()};
}

}  // namespace

// ---- SQL ----
namespace db {

void prepare(pqxx::connection& c) {
  c.prepare("product", "SELECT id, name, price_cents, version FROM products WHERE id = $1");
  c.prepare("products",
            "SELECT id, name, price_cents, version FROM products WHERE id = ANY($1::bigint[])");
  c.prepare("order_items",
            "SELECT o.id, i.product_id, i.qty FROM orders o "
            "LEFT JOIN order_items i ON i.order_id = o.id WHERE o.id = $1 ORDER BY i.product_id");
  c.prepare("set_price",
            "UPDATE products SET price_cents = $2, version = version + 1, updated_at = now() "
            "WHERE id = $1 AND version = $3");
  c.prepare("upsert_views",
            "INSERT INTO product_views AS stored (product_id, views, version) "
            "SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) "
            "ON CONFLICT (product_id) DO UPDATE SET views = EXCLUDED.views, "
            "version = EXCLUDED.version WHERE stored.version < EXCLUDED.version");
  c.prepare("views", "SELECT views, version FROM product_views WHERE product_id = $1");
}

absl::Status run_sql_file(PgPool& pool, const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError("cannot read " + path);
  std::stringstream sql;
  sql << in.rdbuf();
  return pool
      .run<bool>("sql_file", PgPool::Retry::kNo,
                 [&](pqxx::connection& c) -> absl::StatusOr<bool> {
                   pqxx::work tx(c);
                   tx.exec(sql.str());
                   tx.commit();
                   return true;
                 })
      .status();
}

absl::StatusOr<Product> load_product(PgPool& pool, Id id) {
  return pool.run<Product>("products", PgPool::Retry::kOnceIfBroken,
                           [&](pqxx::connection& c) -> absl::StatusOr<Product> {
                             pqxx::nontransaction tx(c);
                             pqxx::result r = tx.exec_prepared("product", id);
                             if (r.empty()) {
                               return absl::NotFoundError("no product " + std::to_string(id));
                             }
                             return row_to_product(r[0]);
                           });
}

absl::StatusOr<absl::flat_hash_map<Id, Product>> load_products(PgPool& pool,
                                                               std::span<const Id> ids) {
  using Map = absl::flat_hash_map<Id, Product>;
  const std::string arr = pg_array(ids, [](Id x) { return x; });
  return pool.run<Map>("products", PgPool::Retry::kOnceIfBroken,
                       [&](pqxx::connection& c) -> absl::StatusOr<Map> {
                         pqxx::nontransaction tx(c);
                         Map m;
                         for (const pqxx::row& r : tx.exec_prepared("products", arr)) {
                           Product p = row_to_product(r);
                           m.emplace(p.id, std::move(p));
                         }
                         return m;
                       });
}

absl::StatusOr<std::vector<std::pair<Id, int>>> load_order_items(PgPool& pool, Id order_id) {
  using Items = std::vector<std::pair<Id, int>>;
  return pool.run<Items>("order_items", PgPool::Retry::kOnceIfBroken,
                         [&](pqxx::connection& c) -> absl::StatusOr<Items> {
                           pqxx::nontransaction tx(c);
                           pqxx::result r = tx.exec_prepared("order_items", order_id);
                           if (r.empty())
                             return absl::NotFoundError("no order " + std::to_string(order_id));
                           Items items;
                           for (const pqxx::row& row : r) {
                             if (!row[1].is_null())
                               items.emplace_back(row[1].as<Id>(), row[2].as<int>());
                           }
                           return items;
                         });
}

absl::StatusOr<OrderPage> order_page_n_plus_1(PgPool& pool, Id order_id) {
  absl::StatusOr<std::vector<std::pair<Id, int>>> items = load_order_items(pool, order_id);
  if (!items.ok()) return items.status();
  OrderPage page{order_id, {}, 0};
  for (const auto& [pid, qty] : *items) {
    absl::StatusOr<Product> p = load_product(pool, pid);  // one query per item: the N+1
    if (!p.ok()) return p.status();
    page.total_cents += p->price_cents * qty;
    page.lines.push_back({*std::move(p), qty});
  }
  return page;
}

absl::Status update_prices(PgPool& pool, std::span<const std::pair<Id, Product>> rows) {
  return pool
      .run<bool>(
          "set_price", PgPool::Retry::kNo,
          [&](pqxx::connection& c) -> absl::StatusOr<bool> {
            pqxx::work tx(c);
            for (const auto& [id, p] : rows) {
              if (tx.exec_prepared("set_price", id, p.price_cents, p.version - 1).affected_rows() !=
                  1) {
                return absl::AbortedError("product " + std::to_string(id) +
                                          " is no longer at version " +
                                          std::to_string(p.version - 1));
              }  // ~work rolls back
            }
            tx.commit();
            return true;
          })
      .status();
}

absl::Status upsert_views(PgPool& pool, std::span<const std::pair<Id, ViewCount>> rows) {
  using Row = std::pair<Id, ViewCount>;
  const std::string ids = pg_array(rows, [](const Row& r) { return r.first; });
  const std::string views = pg_array(rows, [](const Row& r) { return r.second.views; });
  const std::string versions = pg_array(rows, [](const Row& r) { return r.second.version; });
  return pool
      .run<bool>("upsert_views", PgPool::Retry::kNo,
                 [&](pqxx::connection& c) -> absl::StatusOr<bool> {
                   pqxx::nontransaction tx(c);  // one statement: its own transaction
                   tx.exec_prepared("upsert_views", ids, views, versions);
                   return true;
                 })
      .status();
}

absl::StatusOr<ViewCount> load_views(PgPool& pool, Id id) {
  return pool.run<ViewCount>("views", PgPool::Retry::kOnceIfBroken,
                             [&](pqxx::connection& c) -> absl::StatusOr<ViewCount> {
                               pqxx::nontransaction tx(c);
                               pqxx::result r = tx.exec_prepared("views", id);
                               if (r.empty()) return ViewCount{};
                               return ViewCount{r[0][0].as<Id>(), r[0][1].as<Id>()};
                             });
}

}  // namespace db

// ---- larder in front ----

Catalog::Catalog(CatalogOptions options) : opt_(std::move(options)) {
  const std::string search_path = opt_.search_path;
  pool_ = std::make_unique<PgPool>(PgPoolOptions{
      .conninfo = opt_.conninfo,
      .size = opt_.pool_size,
      .on_connect = [search_path](pqxx::connection& c) {
        if (!search_path.empty())
          pqxx::nontransaction(c).exec("SET search_path TO " + c.quote_name(search_path));
        db::prepare(c);
      }});

  // Products: cache-aside reads (loaders bound here), write-through price changes.
  PgPool* pool = pool_.get();
  larder::CacheOptions<Id, Product> products{
      .ttl = opt_.ttl,
      .stale_while_revalidate = opt_.stale_while_revalidate,
      .stale_if_error = opt_.stale_if_error,
      .loader = [pool](Id k) { return db::load_product(*pool, k); },
      .batch_loader =
          [pool](std::span<const Id> missing) {
            return db::load_products(*pool, missing);  // ONE query for every product not cached
          },
      .write_mode = larder::WriteMode::kWriteThrough,
      .writer = {.write = [pool](auto rows) { return db::update_prices(*pool, rows); },
                 .erase = nullptr},
      .ttl_jitter = opt_.ttl_jitter,
      .clock = opt_.clock};
  const larder::LocalStoreOptions local{.max_entries = opt_.max_entries};
  if (opt_.redis_host.empty()) {
    products_ = std::make_unique<larder::Cache<Id, Product>>(
        larder::make_local_cache<Id, Product>(local, std::move(products)));
  } else {
#if LARDER_HAS_REDIS
    auto client =
        std::make_shared<larder::RedisClient>(larder::RedisOptions{.host = opt_.redis_host,
                                                                   .port = opt_.redis_port,
                                                                   .key_prefix = opt_.redis_prefix,
                                                                   .clock = opt_.clock});
    products_ = std::make_unique<larder::Cache<Id, Product>>(larder::make_tiered_cache<Id, Product>(
        client, std::move(products),
        {.local = local, .load_guard = false, .channel = opt_.redis_prefix + "invalidate"}));
    redis_ = client;
#else
    throw std::invalid_argument("CatalogOptions::redis_host: larder was built without Redis");
#endif
  }

  // View counters: write-back with a journal, batched idempotent upserts;
  // record_view is an atomic merge.
  views_ = std::make_unique<larder::Cache<Id, ViewCount>>(larder::make_local_cache<Id, ViewCount>(
      local, {.ttl = std::chrono::minutes(10),
              .loader = [pool](Id k) { return db::load_views(*pool, k); },
              .write_mode = larder::WriteMode::kWriteBack,
              .writer = {.write = [pool](auto rows) { return db::upsert_views(*pool, rows); },
                         .erase = nullptr},
              .write_back = {.delay = opt_.views_write_delay, .journal = opt_.views_journal},
              .clock = opt_.clock}));
}

Catalog::~Catalog() {
  views_.reset();  // drains the write-back through the pool, so before it
  products_.reset();
}

absl::StatusOr<Product> Catalog::product(Id id) { return products_->get(id); }

absl::StatusOr<OrderPage> Catalog::order_page(Id order_id) {
  absl::StatusOr<std::vector<std::pair<Id, int>>> items = db::load_order_items(*pool_, order_id);
  if (!items.ok()) return items.status();
  std::vector<Id> ids;
  for (const auto& it : *items) ids.push_back(it.first);
  auto got = products_->get_many(ids);  // ONE query for every product not cached
  if (!got.ok()) return got.status();
  OrderPage page{order_id, {}, 0};
  for (const auto& [pid, qty] : *items) {
    auto p = got->find(pid);
    if (p == got->end()) {
      return absl::NotFoundError("order " + std::to_string(order_id) + " lists missing product " +
                                 std::to_string(pid));
    }
    page.total_cents += p->second.price_cents * qty;
    page.lines.push_back({p->second, qty});
  }
  return page;
}

absl::Status Catalog::set_price(Id id, std::int64_t cents) {
  if (cents < 0) return absl::InvalidArgumentError("set_price: negative price");
  for (int attempt = 0; attempt < 8; ++attempt) {
    absl::StatusOr<Product> cur = product(id);
    if (!cur.ok()) return cur.status();
    Product next = *std::move(cur);
    next.price_cents = cents;
    ++next.version;
    absl::Status s =
        products_->put(id, next);  // Writer: UPDATE ... WHERE version = next.version - 1
    if (!absl::IsAborted(s)) return s;
    (void)products_->invalidate(id);  // our copy was older than the row: re-read it
  }
  return absl::AbortedError("set_price: product " + std::to_string(id) +
                            " kept changing under 8 attempts");
}

absl::Status Catalog::record_view(Id id) {
  // Atomic read-modify-write: the current count (cached, pending or loaded),
  // plus one; every version bump makes the flusher's upsert idempotent.
  return views_
      ->merge(id, ViewCount{1, 1},
              [](const ViewCount& cur, const ViewCount& d) {
                return ViewCount{cur.views + d.views, cur.version + d.version};
              })
      .status();
}

absl::StatusOr<std::int64_t> Catalog::views(Id id) {
  absl::StatusOr<ViewCount> v = views_->get(id);
  if (!v.ok()) return v.status();
  return v->views;
}

absl::Status Catalog::flush_views() { return views_->flush(); }

}  // namespace catalog
