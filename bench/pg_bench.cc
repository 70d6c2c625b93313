// SPDX-License-Identifier: Apache-2.0
//
// pg_bench: the catalog example (examples/catalog) under load, against a real
// PostgreSQL, all rows in one run so they share the machine's state:
//   direct      every read is a query, every price change an UPDATE
//   local       Cache over LocalStore (write-through price changes)
//   tiered      Cache over TieredStore(LocalStore, RedisStore) (needs Redis)
// Workload: `products` rows, reads of Zipf(0.99)-distributed ids, `update_pct`
// percent price changes on the same distribution, `threads` client threads,
// `seconds` per row after a warm-up of `warmup` seconds (not measured). The
// cached rows start with every product loaded by get_many (--prewarm=0: cold),
// so they show the steady state of a long-running service. Reported per row: throughput, read
// p50/p99/p99.9, update p50/p99, PostgreSQL statements per 1,000 requests (counted by PgPool), hit
// ratio (of the row's reads, including its warm-up), and failed requests (for the cached rows:
// set_price calls that lost the optimistic version check 8 times in a row on a hot product,
// kAborted, nothing written). The ceiling: a cache whose reads cost nothing is bound by its
// updates. The "updates" row measures UPDATE throughput U at `threads` threads alone, so such a
// cache reaches U / (update_pct / 100) requests per second. Then the N+1 page (100 items): the
// uncached page (1 + 100 queries) against Catalog::order_page cold (1 + 1) and warm (1 items query
// + 0).
//
// Not a Google Benchmark binary: the rows are timed phases of a mixed
// multi-threaded workload, not a loop of one operation.
//
// Run: LARDER_BENCH_PG_URI=postgresql://... [LARDER_BENCH_REDIS_HOST=127.0.0.1
//      LARDER_BENCH_REDIS_PORT=6379] pg_bench [--seconds=20] [--warmup=3]
//      [--threads=8] [--products=100000] [--update-pct=1] [--prewarm=1]
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "catalog.h"

namespace {

using Clock = std::chrono::steady_clock;
using catalog::PgPool;

// A log-bucketed latency histogram (1% buckets, 10 ns .. 100 s).
struct Histogram {
  static constexpr double kBase = 1.01;
  std::vector<std::uint64_t> b = std::vector<std::uint64_t>(2400, 0);
  std::uint64_t n = 0;
  void add(std::int64_t ns) {
    const double x = std::max<double>(static_cast<double>(ns), 10.0);
    std::size_t i = static_cast<std::size_t>(std::log(x / 10.0) / std::log(kBase));
    ++b[std::min(i, b.size() - 1)];
    ++n;
  }
  void merge(const Histogram& o) {
    for (std::size_t i = 0; i < b.size(); ++i) b[i] += o.b[i];
    n += o.n;
  }
  double quantile_us(double q) const {
    if (n == 0) return 0;
    const std::uint64_t want = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(n)));
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < b.size(); ++i) {
      seen += b[i];
      if (seen >= want) return 10.0 * std::pow(kBase, static_cast<double>(i) + 0.5) / 1000.0;
    }
    return 0;
  }
};

// Zipf(s) over ranks 0..n-1 by inverse CDF (binary search).
class Zipf {
 public:
  Zipf(std::size_t n, double s) : cdf_(n) {
    double sum = 0;
    for (std::size_t i = 0; i < n; ++i)
      cdf_[i] = (sum += 1.0 / std::pow(static_cast<double>(i + 1), s));
    for (double& c : cdf_) c /= sum;
  }
  std::int64_t operator()(std::mt19937_64& rng) const {
    const double u = std::uniform_real_distribution<double>(0, 1)(rng);
    return static_cast<std::int64_t>(std::lower_bound(cdf_.begin(), cdf_.end(), u) - cdf_.begin()) +
           1;
  }

 private:
  std::vector<double> cdf_;
};

struct Row {
  std::string name;
  double ops_per_s = 0;
  Histogram reads, updates;
  double queries_per_1000 = 0;
  double hit_ratio = -1;
  std::uint64_t errors = 0;
};

struct Workload {
  int threads = 8;
  double seconds = 20, warmup = 3;
  double update_frac = 0.01;
  const Zipf* zipf = nullptr;
};

// Runs read/update from `threads` threads for warmup + seconds; measures the latter.
Row run_row(const std::string& name, const Workload& w, PgPool& pool,
            const std::function<bool(std::int64_t)>& read,
            const std::function<bool(std::int64_t, std::int64_t)>& update) {
  Row row;
  row.name = name;
  std::atomic<bool> measuring{false}, stop{false};
  std::vector<Histogram> rh(w.threads), uh(w.threads);
  std::vector<std::uint64_t> ops(w.threads, 0), errs(w.threads, 0);
  std::vector<std::thread> ts;
  for (int t = 0; t < w.threads; ++t) {
    ts.emplace_back([&, t] {
      std::mt19937_64 rng(12345 + t);
      std::uniform_real_distribution<double> u(0, 1);
      while (!stop.load(std::memory_order_relaxed)) {
        const std::int64_t id = (*w.zipf)(rng);
        const bool is_update = u(rng) < w.update_frac;
        const auto t0 = Clock::now();
        const bool ok =
            is_update ? update(id, static_cast<std::int64_t>(rng() % 100000)) : read(id);
        const auto ns =
            std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count();
        if (measuring.load(std::memory_order_relaxed)) {
          (is_update ? uh[t] : rh[t]).add(ns);
          ++ops[t];
          if (!ok) ++errs[t];
        }
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(w.warmup));
  const std::uint64_t q0 = pool.queries();
  const auto t0 = Clock::now();
  measuring = true;
  std::this_thread::sleep_for(std::chrono::duration<double>(w.seconds));
  measuring = false;
  const double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
  const std::uint64_t q1 = pool.queries();
  stop = true;
  for (std::thread& t : ts) t.join();
  std::uint64_t total = 0;
  for (int t = 0; t < w.threads; ++t) {
    row.reads.merge(rh[t]);
    row.updates.merge(uh[t]);
    total += ops[t];
    row.errors += errs[t];
  }
  row.ops_per_s = static_cast<double>(total) / elapsed;
  row.queries_per_1000 =
      total == 0 ? 0 : 1000.0 * static_cast<double>(q1 - q0) / static_cast<double>(total);
  return row;
}

void print_row(const Row& r) {
  char hr[16] = "-";
  if (r.hit_ratio >= 0) std::snprintf(hr, sizeof(hr), "%.4f", r.hit_ratio);
  std::printf("%-10s %12.0f %9.1f %9.1f %9.1f %9.1f %9.1f %10.1f %8s %7llu\n", r.name.c_str(),
              r.ops_per_s, r.reads.quantile_us(0.5), r.reads.quantile_us(0.99),
              r.reads.quantile_us(0.999), r.updates.quantile_us(0.5), r.updates.quantile_us(0.99),
              r.queries_per_1000, hr, static_cast<unsigned long long>(r.errors));
  std::fflush(stdout);
}

double flag(int argc, char** argv, std::string_view name, double def) {
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a.starts_with(name) && a.size() > name.size() && a[name.size()] == '=') {
      return std::atof(argv[i] + name.size() + 1);
    }
  }
  return def;
}

}  // namespace

int main(int argc, char** argv) {
  const char* uri = std::getenv("LARDER_BENCH_PG_URI");
  if (uri == nullptr) {
    std::fprintf(stderr, "set LARDER_BENCH_PG_URI (a PostgreSQL it may create a schema in)\n");
    return 2;
  }
  const char* redis_host = std::getenv("LARDER_BENCH_REDIS_HOST");
  const char* redis_port = std::getenv("LARDER_BENCH_REDIS_PORT");
  Workload w;
  w.seconds = flag(argc, argv, "--seconds", 20);
  w.warmup = flag(argc, argv, "--warmup", 3);
  w.threads = static_cast<int>(flag(argc, argv, "--threads", 8));
  w.update_frac = flag(argc, argv, "--update-pct", 1) / 100.0;
  const int products = static_cast<int>(flag(argc, argv, "--products", 100000));
  const std::string schema = "larder_pg_bench";

  // ---- data ----
  {
    PgPool admin({.conninfo = uri, .size = 1});
    auto st = admin.run<bool>("setup", PgPool::Retry::kNo,
                              [&](pqxx::connection& c) -> absl::StatusOr<bool> {
                                pqxx::nontransaction tx(c);
                                tx.exec("DROP SCHEMA IF EXISTS " + schema + " CASCADE");
                                tx.exec("CREATE SCHEMA " + schema);
                                tx.exec("SET search_path TO " + schema);
                                return true;
                              });
    if (!st.ok()) {
      std::fprintf(stderr, "%s\n", st.status().ToString().c_str());
      return 1;
    }
  }
  catalog::CatalogOptions base{
      .conninfo = uri, .search_path = schema, .pool_size = static_cast<std::size_t>(w.threads)};
  {
    catalog::Catalog setup(base);
    absl::Status s = catalog::db::run_sql_file(setup.pool(),
                                               std::string(LARDER_CATALOG_SQL_DIR) + "/schema.sql");
    if (s.ok()) {
      s = setup.pool()
              .run<bool>(
                  "seed", PgPool::Retry::kNo,
                  [&](pqxx::connection& c) -> absl::StatusOr<bool> {
                    pqxx::nontransaction tx(c);
                    tx.exec("SELECT catalog_seed(" + std::to_string(products) + ", 100, 100)");
                    tx.exec("VACUUM ANALYZE products");
                    return true;
                  })
              .status();
    }
    if (!s.ok()) {
      std::fprintf(stderr, "%s\n", s.ToString().c_str());
      return 1;
    }
  }
  const Zipf zipf(static_cast<std::size_t>(products), 0.99);
  w.zipf = &zipf;
  std::printf(
      "pg_bench: %d products, Zipf 0.99, %.0f%% price updates, %d client threads, "
      "%.0f s per row after %.0f s warm-up; cached rows %s\n",
      products, w.update_frac * 100, w.threads, w.seconds, w.warmup,
      flag(argc, argv, "--prewarm", 1) != 0 ? "pre-warmed (every product loaded)" : "cold");
  std::printf("%-10s %12s %9s %9s %9s %9s %9s %10s %8s %7s\n", "row", "requests/s", "rd p50us",
              "rd p99us", "rd p999us", "up p50us", "up p99us", "q/1000req", "hit", "failed");

  std::vector<Row> rows;
  // ---- direct: no cache ----
  {
    catalog::Catalog direct(base);  // only its pool is used
    PgPool& pool = direct.pool();
    auto read = [&](std::int64_t id) { return catalog::db::load_product(pool, id).ok(); };
    auto update = [&](std::int64_t id, std::int64_t cents) {
      return pool
          .run<bool>("set_price", PgPool::Retry::kNo,
                     [&](pqxx::connection& c) -> absl::StatusOr<bool> {
                       pqxx::work tx(c);
                       tx.exec_params(
                           "UPDATE products SET price_cents = $2, version = version + 1, "
                           "updated_at = now() WHERE id = $1",
                           id, cents);
                       tx.commit();
                       return true;
                     })
          .ok();
    };
    rows.push_back(run_row("direct", w, pool, read, update));
    print_row(rows.back());
    Workload only_updates = w;
    only_updates.update_frac = 1.0;
    only_updates.seconds = std::max(2.0, w.seconds / 4);
    only_updates.warmup = 1;
    rows.push_back(run_row("updates", only_updates, pool, read, update));
    print_row(rows.back());
  }
  const double ceiling = rows.back().ops_per_s / w.update_frac;

  // ---- cached rows ----
  const bool prewarm = flag(argc, argv, "--prewarm", 1) != 0;
  auto cached_row = [&](const std::string& name, catalog::CatalogOptions o) {
    catalog::Catalog cat(o);
    if (prewarm) {  // every product into the cache: 100 get_many calls of 1,000
      std::vector<std::int64_t> ids;
      for (std::int64_t id = 1; id <= products; ++id) {
        ids.push_back(id);
        if (ids.size() == 1000 || id == products) {
          (void)cat.products().get_many(ids, [&](std::span<const std::int64_t> missing) {
            return catalog::db::load_products(cat.pool(), missing);
          });
          ids.clear();
        }
      }
    }
    const larder::CacheStats s0 = cat.products().stats();
    Row r = run_row(
        name, w, cat.pool(), [&](std::int64_t id) { return cat.product(id).ok(); },
        [&](std::int64_t id, std::int64_t cents) { return cat.set_price(id, cents).ok(); });
    larder::CacheStats d = cat.products().stats();  // the rows' own reads, not the pre-warm
    d.hits -= s0.hits;
    d.stale_hits -= s0.stale_hits;
    d.misses -= s0.misses;
    r.hit_ratio = d.hit_ratio();
    rows.push_back(r);
    print_row(rows.back());
  };
  cached_row("local", base);
  if (redis_host != nullptr && redis_port != nullptr) {
    catalog::CatalogOptions o = base;
    o.redis_host = redis_host;
    o.redis_port = std::atoi(redis_port);
    o.redis_prefix = "pg_bench:" + std::to_string(::getpid()) + ":";
    cached_row("tiered", o);
  } else {
    std::printf("tiered     (skipped: set LARDER_BENCH_REDIS_HOST/PORT)\n");
  }

  std::printf(
      "\nceiling (reads free, updates at the 'updates' row's rate / %.2f): %.0f requests/s\n",
      w.update_frac, ceiling);
  const Row& direct = rows[0];
  for (std::size_t i = 2; i < rows.size(); ++i) {
    std::printf("%-7s %.2fx the ceiling, %.1fx direct throughput, read p99 %.3fx direct\n",
                rows[i].name.c_str(), rows[i].ops_per_s / ceiling,
                rows[i].ops_per_s / direct.ops_per_s,
                rows[i].reads.quantile_us(0.99) / direct.reads.quantile_us(0.99));
  }

  // ---- the N+1 page ----
  {
    catalog::Catalog cat(base);
    PgPool& pool = cat.pool();
    constexpr int kPages = 200;
    Histogram naive, cold, warm;
    for (int i = 0; i < kPages; ++i) {
      const std::int64_t order = 1 + i % 100;
      auto t0 = Clock::now();
      const bool a = catalog::db::order_page_n_plus_1(pool, order).ok();
      naive.add(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count());
      (void)cat.products().invalidate_all();
      t0 = Clock::now();
      const bool b = cat.order_page(order).ok();
      cold.add(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count());
      t0 = Clock::now();
      const bool c = cat.order_page(order).ok();
      warm.add(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count());
      if (!a || !b || !c) {
        std::fprintf(stderr, "order page %lld failed\n", static_cast<long long>(order));
        return 1;
      }
    }
    std::printf("\nN+1 page, 100 items, %d pages, one thread (p50 / p99 us):\n", kPages);
    std::printf("  direct N+1 (1 + 100 queries)     %9.1f / %9.1f\n", naive.quantile_us(0.5),
                naive.quantile_us(0.99));
    std::printf("  get_many cold (1 + 1 queries)    %9.1f / %9.1f   %.1fx faster (p50)\n",
                cold.quantile_us(0.5), cold.quantile_us(0.99),
                naive.quantile_us(0.5) / cold.quantile_us(0.5));
    std::printf("  get_many warm (1 + 0 queries)    %9.1f / %9.1f   %.1fx faster (p50)\n",
                warm.quantile_us(0.5), warm.quantile_us(0.99),
                naive.quantile_us(0.5) / warm.quantile_us(0.5));
  }
  PgPool admin({.conninfo = uri, .size = 1});
  (void)admin.run<bool>("cleanup", PgPool::Retry::kNo,
                        [&](pqxx::connection& c) -> absl::StatusOr<bool> {
                          pqxx::nontransaction(c).exec("DROP SCHEMA " + schema + " CASCADE");
                          return true;
                        });
  return 0;
}
