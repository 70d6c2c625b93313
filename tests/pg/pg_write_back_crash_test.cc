// SPDX-License-Identifier: Apache-2.0
//
// Write-back crash against PostgreSQL: a child process records views through
// the catalog's write-back with a journal and is SIGKILLed after a random
// number of acknowledgements (so wherever it is: a put, a journal append, a
// flusher upsert in flight). Then a new Catalog on the journal replays it and
// flushes. Every acknowledged increment must be in PostgreSQL exactly once:
// for each product, views = acknowledged + (0 or 1 for the one increment in
// flight when the child died), never more (a replay re-writes absolute,
// versioned counters: idempotent). Several rounds, each over the counters the
// last left. The seed is printed; LARDER_TEST_SEED=<seed> replays it.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <random>
#include <string>

#include "gtest/gtest.h"
#include "tests/pg/pg_test_util.h"

namespace {

using larder::testing::TestSchema;
namespace fs = std::filesystem;

std::string helper_path() {
  return (fs::read_symlink("/proc/self/exe").parent_path() / "pg_views_crash_helper").string();
}

TEST(PgWriteBackCrashTest, EveryAcknowledgedViewIsInPostgresExactlyOnce) {
  LARDER_REQUIRE_PG_OR_SKIP(uri);
  TestSchema schema(uri, 50, 1, 2);
  ASSERT_TRUE(schema.status().ok()) << schema.status();
  const std::string env_seed = larder::testing::pg_env("LARDER_TEST_SEED");
  const std::uint64_t seed = env_seed.empty() ? std::random_device{}() : std::stoull(env_seed);
  std::printf("seed %llu (replay: LARDER_TEST_SEED=%llu)\n", static_cast<unsigned long long>(seed),
              static_cast<unsigned long long>(seed));
  SCOPED_TRACE("LARDER_TEST_SEED=" + std::to_string(seed));
  std::mt19937_64 rng(seed);
  const fs::path dir = fs::temp_directory_path() / ("larder-pgcrash-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string journal = (dir / "views").string();

  std::map<std::int64_t, std::int64_t> acked, in_flight;
  constexpr int kRounds = 3;
  for (int round = 0; round < kRounds; ++round) {
    const int kill_after = 20 + static_cast<int>(rng() % 400);
    int p[2];
    ASSERT_EQ(::pipe(p), 0);
    const std::string child_seed = std::to_string(rng());
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::dup2(p[1], 1);
      ::close(p[0]);
      ::close(p[1]);
      const std::string h = helper_path();
      ::execl(h.c_str(), h.c_str(), uri.c_str(), schema.name().c_str(), journal.c_str(),
              child_seed.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    ::close(p[1]);
    FILE* out = ::fdopen(p[0], "r");
    char kind = 0;
    long long id = 0;
    int acks = 0;
    bool killed = false;
    std::int64_t pending = -1;  // "B id" without its "A id"
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::fscanf(out, " %c %lld", &kind, &id) == 2) {
      if (kind == 'B') {
        pending = id;
      } else {
        ++acked[id];
        pending = -1;
        if (++acks == kill_after && !killed) {
          ::kill(pid, SIGKILL);  // the child is somewhere past this ack: a random moment
          killed = true;
        }
      }
      if (!killed && std::chrono::steady_clock::now() > deadline) {
        ::kill(pid, SIGKILL);
        killed = true;
        ADD_FAILURE() << "the child made only " << acks << " acknowledgements in 60 s";
      }
    }
    ::fclose(out);
    int st = 0;
    ASSERT_EQ(::waitpid(pid, &st, 0), pid);
    ASSERT_TRUE(killed) << "the child exited by itself (status " << st << ") after " << acks
                        << " acks";
    ASSERT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) << "status " << st;
    if (pending >= 0) ++in_flight[pending];

    // Recovery: a new Catalog replays the journal; flush writes every increment.
    {
      catalog::CatalogOptions o = schema.options();
      o.views_journal = journal;
      catalog::Catalog cat(o);
      ASSERT_TRUE(cat.flush_views().ok());
    }
    catalog::PgPool pool({.conninfo = uri, .size = 1, .on_connect = [&](pqxx::connection& c) {
                            pqxx::nontransaction(c).exec("SET search_path TO " + schema.name());
                            catalog::db::prepare(c);
                          }});
    for (std::int64_t pid_ = 1; pid_ <= 50; ++pid_) {
      absl::StatusOr<catalog::ViewCount> v = catalog::db::load_views(pool, pid_);
      ASSERT_TRUE(v.ok()) << v.status();
      const std::int64_t lo = acked[pid_], hi = acked[pid_] + in_flight[pid_];
      EXPECT_GE(v->views, lo) << "round " << round << " product " << pid_
                              << ": acknowledged views lost";
      EXPECT_LE(v->views, hi) << "round " << round << " product " << pid_
                              << ": views counted twice";
      EXPECT_EQ(v->version, v->views) << "product " << pid_;
      // An in-flight increment that did land counts from now on as acknowledged.
      if (v->views > acked[pid_]) {
        in_flight[pid_] -= v->views - acked[pid_];
        acked[pid_] = v->views;
      }
    }
    if (::testing::Test::HasFailure()) break;
  }
  std::int64_t total = 0;
  for (const auto& [k, n] : acked) total += n;
  std::printf("%d rounds, %lld acknowledged views, all in PostgreSQL exactly once\n", kRounds,
              static_cast<long long>(total));
  fs::remove_all(dir);
}

}  // namespace
