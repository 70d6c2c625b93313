// SPDX-License-Identifier: Apache-2.0
//
// The child process of write_back_crash_test: does acknowledged write-back
// puts with a journal into a real, file-backed system of record, and gets
// killed with SIGKILL by the test at a random moment.
//
//   write_back_crash_helper run <journal> <sor-file> <first-value> <every|interval|never>
//       Two threads put ("t<thread>k<j>", value) with increasing values, forever.
//       After each put returns OK, prints "<key> <value>\n" to stdout in one
//       write() (an acknowledgement the parent records).
//   write_back_crash_helper flushed <journal> <sor-file> <n> <stuck>
//       Puts n view counts ("page<i % 500>", i) and flushes them; then puts
//       ("stuck<i>", i) for i < stuck, which the Writer refuses, and SIGKILLs
//       itself: a crash with only the stuck puts unwritten.
//   write_back_crash_helper recover <journal> <sor-file>
//       Opens a WriteBack on the same journal (which replays it through the
//       Writer), prints "replayed <n>" on stdout, flushes, and exits 0 on
//       success.
//
// The system of record is <sor-file>: the Writer appends one line
// "<key> <value>;\n" per entry, one write() per batch, then fsyncs. Lines are
// terminated by ';' so a line torn by the kill is recognisable.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "larder/internal/write_back.h"
#include "tests/testing/crash_child.h"

namespace {

using larder::internal::FsyncPolicy;
using Wb = larder::internal::WriteBack<std::string, std::int64_t>;

Wb::Options options(const std::string& journal, FsyncPolicy policy) {
  return {.delay = std::chrono::milliseconds(2),
          .max_batch = 8,
          .max_dirty = 1000,
          .journal_path = journal,
          .fsync = policy,
          .fsync_interval = std::chrono::milliseconds(5),
          .journal_segment_bytes = 4096,  // rotate and compact often
          .retry_base = std::chrono::milliseconds(1),
          .retry_max = std::chrono::milliseconds(10)};
}

int run(const std::string& journal, const std::string& sor, std::int64_t first, FsyncPolicy p) {
  Wb wb(larder::testing::file_sor_writer(sor), options(journal, p));
  std::vector<std::thread> ts;
  for (int t = 0; t < 2; ++t) {
    ts.emplace_back([&, t] {
      for (std::int64_t i = first; i < first + 1'000'000; ++i) {
        const std::string key = "t" + std::to_string(t) + "k" + std::to_string(i % 13);
        absl::Status s = wb.put(key, i);
        if (!s.ok()) {
          std::fprintf(stderr, "put failed: %s\n", s.ToString().c_str());
          std::_Exit(3);
        }
        larder::testing::acknowledge(key, i);
      }
    });
  }
  for (auto& t : ts) t.join();
  return 0;
}

int flushed(const std::string& journal, const std::string& sor, int n, int stuck) {
  auto o = options(journal, FsyncPolicy::kEveryInterval);  // SIGKILL: all policies survive it
  o.journal_segment_bytes = Wb::Options{}.journal_segment_bytes;  // the defaults
  o.max_batch = Wb::Options{}.max_batch;
  o.max_dirty = Wb::Options{}.max_dirty;
  Wb wb(larder::testing::failing_for_stuck(larder::testing::file_sor_writer(sor)), o);
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t) {  // concurrent puts share group commits
    ts.emplace_back([&, t] {
      for (int i = t; i < n; i += 4) {
        if (!wb.put("page" + std::to_string(i % 500), i).ok()) std::_Exit(3);
      }
    });
  }
  for (auto& t : ts) t.join();
  if (!wb.flush().ok() || wb.dirty() != 0) std::_Exit(7);
  for (int i = 0; i < stuck; ++i) {
    if (!wb.put("stuck" + std::to_string(i), i).ok()) std::_Exit(3);
  }
  (void)wb.flush();  // fails for the stuck keys: they stay dirty
  ::kill(::getpid(), SIGKILL);
  return 8;
}

int recover(const std::string& journal, const std::string& sor) {
  larder::testing::end_torn_line(sor);
  Wb wb(larder::testing::file_sor_writer(sor), options(journal, FsyncPolicy::kEveryWrite));
  const larder::internal::WriteBackStats st = wb.stats();
  std::fprintf(
      stderr, "recover: replayed %llu records, torn %llu, corrupt %llu, undecodable %llu\n",
      static_cast<unsigned long long>(st.replayed), static_cast<unsigned long long>(st.replay_torn),
      static_cast<unsigned long long>(st.replay_corrupt),
      static_cast<unsigned long long>(st.replay_undecodable));
  larder::testing::report_replayed(st.replayed);
  absl::Status s = wb.flush();
  if (!s.ok()) {
    std::fprintf(stderr, "recover: flush failed: %s\n", s.ToString().c_str());
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 6 && std::strcmp(argv[1], "run") == 0) {
    const FsyncPolicy policy = larder::testing::parse_fsync_policy(argv[5]);
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
