// SPDX-License-Identifier: Apache-2.0
//
// The child side of the write-back crash protocol (crash_harness.h is the
// parent side): what write_back_crash_helper and cache_crash_helper share.
//
// The system of record is a file: file_sor_writer appends "<key> <value>;\n"
// per entry, one write() per batch, then fsyncs; the ';' marks complete lines.
// An acknowledged put is reported as "<key> <value>\n" on stdout in one write().
#ifndef LARDER_TESTS_TESTING_CRASH_CHILD_H_
#define LARDER_TESTS_TESTING_CRASH_CHILD_H_

#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "larder/internal/journal.h"
#include "larder/writer.h"

namespace larder::testing {

// file_sor_writer: a Writer into the file-backed system of record at `sor`.
inline Writer<std::string, std::int64_t> file_sor_writer(const std::string& sor) {
  return {.write =
              [sor](std::span<const std::pair<std::string, std::int64_t>> batch) {
                std::string out;
                for (const auto& [k, v] : batch) out += k + " " + std::to_string(v) + ";\n";
                const int fd = ::open(sor.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
                if (fd < 0) return absl::UnavailableError("open system of record");
                const ssize_t n = ::write(fd, out.data(), out.size());
                const int rc = ::fsync(fd);
                ::close(fd);
                if (n != static_cast<ssize_t>(out.size()) || rc != 0) {
                  return absl::UnavailableError("write system of record");
                }
                return absl::OkStatus();
              },
          .erase = nullptr};
}

// failing_for_stuck: `w`, except that a batch holding a key that starts with
// "stuck" fails (the keys stay dirty, as with a system of record that keeps
// refusing them).
inline Writer<std::string, std::int64_t> failing_for_stuck(Writer<std::string, std::int64_t> w) {
  return {.write =
              [w](std::span<const std::pair<std::string, std::int64_t>> batch) {
                for (const auto& [k, v] : batch) {
                  if (k.rfind("stuck", 0) == 0) return absl::UnavailableError("stuck key refused");
                }
                return w.write(batch);
              },
          .erase = nullptr};
}

// report_replayed: tells the parent, on stdout, how many journal records the
// recovery replayed ("replayed <n>\n").
inline void report_replayed(std::uint64_t n) {
  const std::string line = "replayed " + std::to_string(n) + "\n";
  if (::write(1, line.data(), line.size()) != static_cast<ssize_t>(line.size())) std::_Exit(4);
}

// end_torn_line: ends a line the kill tore in the system of record, so the
// next line starts clean (the parent skips lines without their ';').
inline void end_torn_line(const std::string& sor) {
  const int fd = ::open(sor.c_str(), O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return;
  const off_t end = ::lseek(fd, 0, SEEK_END);
  char last = '\n';
  if (end > 0) (void)::pread(fd, &last, 1, end - 1);
  if (last != '\n') (void)::write(fd, "\n", 1);
  ::close(fd);
}

// parse_fsync_policy: "never", "interval", anything else kEveryWrite.
inline internal::FsyncPolicy parse_fsync_policy(const std::string& p) {
  return p == "never"      ? internal::FsyncPolicy::kNever
         : p == "interval" ? internal::FsyncPolicy::kEveryInterval
                           : internal::FsyncPolicy::kEveryWrite;
}

// acknowledge: reports an acknowledged put to the parent; exits 4 if stdout
// is gone.
inline void acknowledge(const std::string& key, std::int64_t value) {
  const std::string line = key + " " + std::to_string(value) + "\n";
  if (::write(1, line.data(), line.size()) != static_cast<ssize_t>(line.size())) std::_Exit(4);
}

}  // namespace larder::testing

#endif  // LARDER_TESTS_TESTING_CRASH_CHILD_H_
