// SPDX-License-Identifier: Apache-2.0
//
// PgPool: a small, fixed-size pool of libpqxx connections for the catalog
// example, and the one place where PostgreSQL errors become absl::Status.
//
// Why a pool at all: a pqxx::connection is not thread-safe, and opening one
// costs a fork on the server (milliseconds). The pool keeps up to `size`
// connections, hands one to a caller at a time, and opens a connection lazily
// when none is idle and fewer than `size` exist; a caller that finds all
// `size` in use waits up to acquire_timeout (then kResourceExhausted).
// A connection that broke (the server restarted, the network dropped it) is
// thrown away instead of returned, so the pool heals itself: the next caller
// opens a fresh one. Reads are retried once on a fresh connection when the
// one they got was broken (a stale idle connection is the common case after a
// server restart); writes are not retried (their outcome may be unknown).
//
// Counting: every run() is ONE statement sent to the server, counted under
// its label (queries("products")). The tests count database work with these
// counters instead of estimating it, and the benchmark reports them per 1,000
// requests. on_query, when set, is called before each statement (a test uses
// it to hold a load until every racing reader has arrived).
//
// Errors (to_status): pqxx::broken_connection -> kUnavailable,
// pqxx::in_doubt_error -> kUnknown (a commit whose outcome is unknown),
// sqlstate class 40 (serialization failure, deadlock) -> kAborted, 57/08
// (server shutting down, connection exceptions) -> kUnavailable, 23
// (constraint violation) -> kFailedPrecondition, anything else -> kInternal.
// Every message starts with "postgres: " and the label.
//
// Thread-safety: every method may be called from any thread.
#ifndef LARDER_EXAMPLES_CATALOG_PG_POOL_H_
#define LARDER_EXAMPLES_CATALOG_PG_POOL_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <pqxx/pqxx>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace catalog {

struct PgPoolOptions {
  // libpq connection string or URI, e.g. "postgresql://app@127.0.0.1:5432/shop".
  std::string conninfo;
  // Most connections open at once. Must be > 0.
  std::size_t size = 8;
  // How long a caller waits for a connection when all are in use.
  std::chrono::milliseconds acquire_timeout{5000};
  // Run on every new connection (SET search_path, conn.prepare(...)).
  std::function<void(pqxx::connection&)> on_connect = nullptr;
};

// to_status: the Status for an exception thrown by libpqxx (see above).
absl::Status to_status(std::string_view label, const std::exception& e);

class PgPool {
 public:
  explicit PgPool(PgPoolOptions options);
  ~PgPool();
  PgPool(const PgPool&) = delete;
  PgPool& operator=(const PgPool&) = delete;

  enum class Retry { kNo, kOnceIfBroken };

  // run: fn(pqxx::connection&) on a pooled connection, as one counted
  // statement under `label`. fn returns absl::StatusOr<T> (or absl::Status);
  // a libpqxx exception it throws becomes a Status (to_status).
  template <class T>
  absl::StatusOr<T> run(std::string_view label, Retry retry,
                        const std::function<absl::StatusOr<T>(pqxx::connection&)>& fn) {
    for (int attempt = 0;; ++attempt) {
      absl::StatusOr<std::unique_ptr<pqxx::connection>> c = acquire();
      if (!c.ok())
        return absl::Status(c.status().code(), std::string("postgres: ") + std::string(label) +
                                                   ": " + std::string(c.status().message()));
      count(label);
      try {
        absl::StatusOr<T> r = fn(**c);
        release(std::move(*c));
        return r;
      } catch (const pqxx::broken_connection& e) {
        release(nullptr);  // drop it: the next caller opens a fresh one
        if (retry == Retry::kOnceIfBroken && attempt == 0) continue;
        return to_status(label, e);
      } catch (const std::exception& e) {
        const bool open = (*c)->is_open();
        release(open ? std::move(*c) : nullptr);
        return to_status(label, e);
      }
    }
  }

  // queries: statements sent under label (all labels when empty) since the
  // pool was made or reset_counts() was called.
  std::uint64_t queries(std::string_view label = {}) const;
  void reset_counts();
  // Called before every statement with its label (tests). Set before use.
  std::function<void(std::string_view)> on_query = nullptr;

  std::size_t open_connections() const;

 private:
  absl::StatusOr<std::unique_ptr<pqxx::connection>> acquire();
  void release(std::unique_ptr<pqxx::connection> c);  // null: a connection was dropped
  void count(std::string_view label);

  const PgPoolOptions opt_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<pqxx::connection>> idle_;       // guarded by mu_
  std::size_t open_ = 0;                                      // guarded by mu_: idle + leased
  std::map<std::string, std::uint64_t, std::less<>> counts_;  // guarded by mu_
};

}  // namespace catalog

#endif  // LARDER_EXAMPLES_CATALOG_PG_POOL_H_
