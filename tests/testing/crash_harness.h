// SPDX-License-Identifier: Apache-2.0
//
// The write-back crash protocol, shared by write_back_crash_test (WriteBack
// alone) and cache_crash_test (through Cache).
//
// A helper program (argv: "run" journal sor base_value fsync_policy, or
// "recover" journal sor) does acknowledged write-back puts into a
// file-backed system of record ("key value;" lines) and prints "key value"
// for every acknowledged put. Each round the harness starts it in "run" mode
// and kills it with SIGKILL after a random number of acknowledgements
// (wherever it is: a put, a group commit, a segment rotation, a Writer call).
// Every other round it then runs "recover", which replays the journal, and
// checks the system of record: for every key the newest value is at least the
// newest ACKNOWLEDGED one (nothing acknowledged was lost) and no key ever
// moved backwards. The other rounds leave their crashed journal to the next
// "run" (replay racing new puts, then crashing again). Rounds cycle through
// the three fsync policies: SIGKILL is a process crash, which all survive.
// The kill points come from a seed the harness prints; LARDER_CRASH_SEED=<n>
// replays one.
#ifndef LARDER_TESTS_TESTING_CRASH_HARNESS_H_
#define LARDER_TESTS_TESTING_CRASH_HARNESS_H_

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "larder/internal/journal.h"

namespace larder::testing {

namespace crash_internal {

namespace fs = std::filesystem;

// Starts the helper with `args`; returns its pid and the read end of its stdout.
inline pid_t spawn(const std::vector<std::string>& args, int* out_fd) {
  int p[2];
  if (::pipe(p) != 0) return -1;
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(p[1], 1);
    ::close(p[0]);
    ::close(p[1]);
    std::vector<char*> argv;
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(p[1]);
  *out_fd = p[0];
  return pid;
}

// Parses "key value;" lines; lines without the ';' (torn by a kill) are skipped.
inline std::map<std::string, std::vector<std::int64_t>> read_sor(const std::string& path) {
  std::map<std::string, std::vector<std::int64_t>> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line.back() != ';') continue;
    std::istringstream ls(line.substr(0, line.size() - 1));
    std::string k;
    std::int64_t v;
    if (ls >> k >> v) out[k].push_back(v);
  }
  return out;
}

}  // namespace crash_internal

// run_crash_rounds: the protocol described in the file comment, against the
// helper program `helper_name` (built next to the test binary). Call it from
// a TEST body; failures are gtest assertions.
inline void run_crash_rounds(const std::string& helper_name) {
  using namespace crash_internal;
  const std::string helper =
      (fs::read_symlink("/proc/self/exe").parent_path() / helper_name).string();
  ASSERT_TRUE(fs::exists(helper)) << helper;
  std::string tmpl = (fs::temp_directory_path() / ("larder_" + helper_name + "_XXXXXX")).string();
  const std::string dir = ::mkdtemp(tmpl.data());
  const std::string journal = dir + "/wb";
  const std::string sor = dir + "/system_of_record.txt";

  // The kill points come from one seed: random unless LARDER_CRASH_SEED
  // names one (replay a failure with the seed it printed).
  unsigned seed = std::random_device{}();
  if (const char* e = std::getenv("LARDER_CRASH_SEED"); e != nullptr && *e != '\0') {
    char* end = nullptr;
    const unsigned long v = std::strtoul(e, &end, 10);
    ASSERT_TRUE(*end == '\0' && v <= 0xffffffffUL)
        << "LARDER_CRASH_SEED=" << e << " is not a 32-bit number";
    seed = static_cast<unsigned>(v);
  }
  std::mt19937 rng(seed);
  std::printf("crash harness: seed %u (replay with LARDER_CRASH_SEED=%u)\n", seed, seed);
  std::fflush(stdout);
  SCOPED_TRACE("seed " + std::to_string(seed) +
               " (replay with LARDER_CRASH_SEED=" + std::to_string(seed) + ")");
  const char* policies[] = {"every", "never", "interval"};
  std::map<std::string, std::int64_t> acked;  // newest acknowledged value per key, all rounds
  constexpr int kRounds = 6;
  for (int round = 0; round < kRounds; ++round) {
    const int kill_after = 20 + static_cast<int>(rng() % 400);
    const std::string policy = policies[round % 3];
    SCOPED_TRACE("round " + std::to_string(round) + " policy " + policy + " kill after " +
                 std::to_string(kill_after));
    int fd = -1;
    const pid_t pid = spawn({helper, "run", journal, sor,
                             std::to_string(static_cast<std::int64_t>(round) * 10'000'000), policy},
                            &fd);
    ASSERT_GT(pid, 0);
    std::string pending;
    int acks = 0;
    bool killed = false;
    char buf[4096];
    for (;;) {
      const ssize_t n = ::read(fd, buf, sizeof(buf));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;  // EOF: the child is dead (killed, or failed)
      pending.append(buf, static_cast<std::size_t>(n));
      std::size_t nl;
      while ((nl = pending.find('\n')) != std::string::npos) {
        std::istringstream ls(pending.substr(0, nl));
        pending.erase(0, nl + 1);
        std::string k;
        std::int64_t v;
        ASSERT_TRUE(static_cast<bool>(ls >> k >> v));
        acked[k] = std::max(acked[k], v);
        if (++acks == kill_after && !killed) {
          ::kill(pid, SIGKILL);  // a random moment of the child's life
          killed = true;
        }
      }
    }
    ::close(fd);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(killed) << "child exited early, status " << status;
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
    // Even rounds leave the crashed journal to the next round's "run", whose
    // process replays it while new puts arrive.
    if (round % 2 == 0) continue;

    int rfd = -1;
    const pid_t rpid = spawn({helper, "recover", journal, sor}, &rfd);
    ASSERT_GT(rpid, 0);
    while (::read(rfd, buf, sizeof(buf)) > 0) {
    }
    ::close(rfd);
    ASSERT_EQ(::waitpid(rpid, &status, 0), rpid);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "recover failed: " << status;

    const auto sor_values = read_sor(sor);
    for (const auto& [k, v] : acked) {
      auto it = sor_values.find(k);
      ASSERT_NE(it, sor_values.end())
          << "acknowledged key " << k << " never reached the system of record";
      EXPECT_GE(it->second.back(), v) << "key " << k << ": acknowledged " << v
                                      << " but the system of record holds " << it->second.back();
    }
    for (const auto& [k, vs] : sor_values) {
      for (std::size_t i = 1; i < vs.size(); ++i) {
        ASSERT_LE(vs[i - 1], vs[i]) << "key " << k << " moved backwards in the system of record";
      }
    }
    // A clean recovery with nothing left dirty deletes the journal.
    EXPECT_TRUE(larder::internal::Journal::segment_files(journal).empty());
  }
  EXPECT_GT(acked.size(), 0u);
  std::error_code ec;
  fs::remove_all(dir, ec);
}

// run_flushed_then_killed: what a crash replays (issue 10 D). The helper, in
// "flushed" mode, does `flushed` view-counter puts (over 500 keys) and
// flush()es them, then `stuck` puts of keys "stuck<i>" that its Writer
// refuses (so they stay dirty), and then SIGKILLs itself. "recover" replays
// the journal and reports how many records it replayed; this checks that the
// stuck puts came back (nothing acknowledged is lost) and that at most
// `stuck + window` records were replayed (the flushed ones are not), and
// that the stuck keys reached the system of record. Returns the count.
inline std::uint64_t run_flushed_then_killed(const std::string& helper_name, int flushed, int stuck,
                                             std::uint64_t window) {
  using namespace crash_internal;
  const std::string helper =
      (fs::read_symlink("/proc/self/exe").parent_path() / helper_name).string();
  EXPECT_TRUE(fs::exists(helper)) << helper;
  std::string tmpl = (fs::temp_directory_path() / ("larder_" + helper_name + "_XXXXXX")).string();
  const std::string dir = ::mkdtemp(tmpl.data());
  const std::string journal = dir + "/wb";
  const std::string sor = dir + "/system_of_record.txt";
  std::uint64_t replayed = ~std::uint64_t{0};
  [&] {
    int fd = -1;
    const pid_t pid = spawn(
        {helper, "flushed", journal, sor, std::to_string(flushed), std::to_string(stuck)}, &fd);
    ASSERT_GT(pid, 0);
    char buf[4096];
    while (::read(fd, buf, sizeof(buf)) > 0) {
    }
    ::close(fd);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        << "the helper did not kill itself: status " << status;

    int rfd = -1;
    const pid_t rpid = spawn({helper, "recover", journal, sor}, &rfd);
    ASSERT_GT(rpid, 0);
    std::string out;
    for (ssize_t n; (n = ::read(rfd, buf, sizeof(buf))) > 0;)
      out.append(buf, static_cast<std::size_t>(n));
    ::close(rfd);
    ASSERT_EQ(::waitpid(rpid, &status, 0), rpid);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "recover failed: " << status;
    const std::size_t at = out.find("replayed ");
    ASSERT_NE(at, std::string::npos) << out;
    replayed = std::stoull(out.substr(at + 9));
    EXPECT_GE(replayed, static_cast<std::uint64_t>(stuck)) << "unflushed puts were not replayed";
    EXPECT_LE(replayed, static_cast<std::uint64_t>(stuck) + window) << "flushed puts were replayed";
    const auto sor_values = read_sor(sor);
    for (int i = 0; i < stuck; ++i) {
      auto it = sor_values.find("stuck" + std::to_string(i));
      ASSERT_NE(it, sor_values.end()) << "stuck" << i << " never reached the system of record";
      EXPECT_EQ(it->second.back(), i);
    }
    EXPECT_TRUE(larder::internal::Journal::segment_files(journal).empty());
  }();
  std::error_code ec;
  fs::remove_all(dir, ec);
  return replayed;
}

}  // namespace larder::testing

#endif  // LARDER_TESTS_TESTING_CRASH_HARNESS_H_
