// SPDX-License-Identifier: Apache-2.0
//
// The child process of cache_crash_test: a Cache<std::string, std::int64_t>
// in kWriteBack with a journal, over a small LocalStore (so dirty keys are
// evicted all the time), writing into a real, file-backed system of record.
// The test kills it with SIGKILL at a random moment.
//
//   cache_crash_helper run <journal> <sor-file> <first-value> <every|interval|never>
//       Two threads put ("t<thread>k<j>", value) with increasing values through
//       Cache::put, forever; after each put returns OK the thread reads the key
//       back (read-your-writes: keys are per thread, so it must not see an
//       older value; exits 5 otherwise) and prints "<key> <value>\n" in one
//       write() (an acknowledgement the parent records).
//   cache_crash_helper flushed <journal> <sor-file> <n> <stuck>
//       With default write-back batching and journal options: puts n view
//       counts ("page<i % 500>", i) and flushes them; then puts ("stuck<i>", i)
//       for i < stuck, which the Writer refuses, and SIGKILLs itself.
//   cache_crash_helper recover <journal> <sor-file>
//       Constructs a new Cache on the same journal (which replays it through
//       the Writer), prints "replayed <n>" on stdout, flushes, checks every
//       replayed key reads back, exits 0.
//
// The system of record is <sor-file>: the Writer appends "<key> <value>;\n"
// per entry, one write() per batch, then fsyncs. The ';' marks complete lines.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "larder/cache.h"
#include "larder/local_store.h"
#include "tests/testing/crash_child.h"

namespace {

using Cache = larder::Cache<std::string, std::int64_t>;

std::unique_ptr<Cache> make_cache(const std::string& journal, const std::string& sor,
                                  larder::FsyncPolicy policy) {
  auto store = std::make_shared<larder::LocalStore<std::string, std::int64_t>>(
      larder::LocalStoreOptions{.max_entries = 8, .max_weight = 0, .shards = 1, .clock = nullptr});
  larder::CacheOptions<std::string, std::int64_t> o;
  o.write_mode = larder::WriteMode::kWriteBack;
  o.writer = larder::testing::file_sor_writer(sor);
  o.write_back.delay = std::chrono::milliseconds(2);
  o.write_back.batch = 8;
  o.write_back.max_dirty = 1000;
  o.write_back.journal = journal;
  o.write_back.fsync = policy;
  o.write_back.fsync_interval = std::chrono::milliseconds(5);
  o.write_back.retry_base = std::chrono::milliseconds(1);
  o.write_back.retry_max = std::chrono::milliseconds(10);
  return std::make_unique<Cache>(store, o);
}

int run(const std::string& journal, const std::string& sor, std::int64_t first,
        larder::FsyncPolicy p) {
  std::unique_ptr<Cache> cache = make_cache(journal, sor, p);
  std::vector<std::thread> ts;
  for (int t = 0; t < 2; ++t) {
    ts.emplace_back([&, t] {
      for (std::int64_t i = first; i < first + 1'000'000; ++i) {
        const std::string key = "t" + std::to_string(t) + "k" + std::to_string(i % 13);
        absl::Status s = cache->put(key, i);
        if (!s.ok()) {
          std::fprintf(stderr, "put failed: %s\n", s.ToString().c_str());
          std::_Exit(3);
        }
        // Keys are per thread: nobody else writes this one. Absent is fine (a
        // key already written may be evicted); an older value is not.
        if (std::optional<std::int64_t> got = cache->get_if_present(key); got && *got != i) {
          std::fprintf(stderr, "read-your-writes failed for %s: %lld, not %lld\n", key.c_str(),
                       static_cast<long long>(*got), static_cast<long long>(i));
          std::_Exit(5);
        }
        larder::testing::acknowledge(key, i);
      }
    });
  }
  for (auto& t : ts) t.join();
  return 0;
}

int flushed(const std::string& journal, const std::string& sor, int n, int stuck) {
  auto store =
      std::make_shared<larder::LocalStore<std::string, std::int64_t>>(larder::LocalStoreOptions{
          .max_entries = 1000, .max_weight = 0, .shards = 1, .clock = nullptr});
  larder::CacheOptions<std::string, std::int64_t> o;
  o.write_mode = larder::WriteMode::kWriteBack;
  o.writer = larder::testing::failing_for_stuck(larder::testing::file_sor_writer(sor));
  o.write_back.journal = journal;
  o.write_back.fsync = larder::FsyncPolicy::kEveryInterval;  // SIGKILL: all policies survive it
  o.write_back.fsync_interval = std::chrono::milliseconds(5);
  Cache cache(store, o);
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t) {  // concurrent puts share group commits
    ts.emplace_back([&, t] {
      for (int i = t; i < n; i += 4) {
        if (!cache.put("page" + std::to_string(i % 500), i).ok()) std::_Exit(3);
      }
    });
  }
  for (auto& t : ts) t.join();
  if (!cache.flush().ok() || cache.stats().dirty != 0) std::_Exit(7);
  for (int i = 0; i < stuck; ++i) {
    if (!cache.put("stuck" + std::to_string(i), i).ok()) std::_Exit(3);
  }
  (void)cache.flush();  // fails for the stuck keys: they stay dirty
  ::kill(::getpid(), SIGKILL);
  return 8;
}

int recover(const std::string& journal, const std::string& sor) {
  larder::testing::end_torn_line(sor);
  std::unique_ptr<Cache> cache = make_cache(journal, sor, larder::FsyncPolicy::kEveryWrite);
  const larder::CacheStats st = cache->stats();
  std::fprintf(stderr, "recover: replayed %llu records, %llu bad tails, %llu dirty\n",
               static_cast<unsigned long long>(st.journal_replayed),
               static_cast<unsigned long long>(st.journal_bad_tails),
               static_cast<unsigned long long>(st.dirty));
  larder::testing::report_replayed(st.journal_replayed);
  absl::Status s = cache->flush();
  if (!s.ok()) {
    std::fprintf(stderr, "recover: flush failed: %s\n", s.ToString().c_str());
    return 1;
  }
  if (cache->stats().dirty != 0) return 6;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 6 && std::strcmp(argv[1], "run") == 0) {
    const larder::FsyncPolicy policy = larder::testing::parse_fsync_policy(argv[5]);
    return run(argv[2], argv[3], std::strtoll(argv[4], nullptr, 10), policy);
  }
  if (argc >= 4 && std::strcmp(argv[1], "recover") == 0) return recover(argv[2], argv[3]);
  if (argc >= 6 && std::strcmp(argv[1], "flushed") == 0) {
    return flushed(argv[2], argv[3], std::atoi(argv[4]), std::atoi(argv[5]));
  }
  std::fprintf(stderr,
               "usage: %s run <journal> <sor> <first> <every|interval|never>\n"
               "       %s recover <journal> <sor>\n",
               argv[0], argv[0]);
  return 2;
}
