// SPDX-License-Identifier: Apache-2.0
//
// TraceParser: larder-sim's reader of access traces, one unsigned 64-bit
// decimal key per line, fed in chunks of any size (a gzip stream or a file
// read 1 MiB at a time; a key may straddle two chunks).
//
// A trace is bytes from outside, so the reader checks what it turns into
// keys: whitespace (space, tab, CR, LF) separates keys; any other byte, or a
// key above 2^64-1 (which unsigned arithmetic would otherwise wrap silently
// into another key), is an error naming the line. A misread trace gives
// plausible but wrong hit ratios, which is worse than no answer.
//
// Not thread-safe; one parser per trace. Header-only so that tests can reach
// it without building the benchmarks.
#ifndef LARDER_BENCH_SIM_TRACE_READER_H_
#define LARDER_BENCH_SIM_TRACE_READER_H_

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace larder::sim {

class TraceParser {
 public:
  // Keys are appended to out, in order.
  explicit TraceParser(std::vector<std::uint64_t>& out) : out_(out) {}

  // feed: the next n bytes of the trace. kInvalidArgument ("<line>: why") on
  // a byte that is not a digit or whitespace, or a key above 2^64-1; the
  // parser is then spent (further calls return the same error).
  absl::Status feed(const char* p, std::size_t n) {
    if (!error_.ok()) return error_;
    for (std::size_t i = 0; i < n; ++i) {
      const char c = p[i];
      if (c >= '0' && c <= '9') {
        const auto d = static_cast<std::uint64_t>(c - '0');
        if (cur_ > (std::numeric_limits<std::uint64_t>::max() - d) / 10) {
          return fail("key larger than 2^64-1 (18446744073709551615)");
        }
        cur_ = cur_ * 10 + d;
        in_num_ = true;
        continue;
      }
      if (c != ' ' && c != '\t' && c != '\r' && c != '\n') {
        static constexpr char kHex[] = "0123456789abcdef";
        const auto u = static_cast<unsigned char>(c);
        return fail(absl::StrCat("unexpected byte 0x", std::string{kHex[u >> 4], kHex[u & 0xf]},
                                 " (a trace is one decimal key per line)"));
      }
      end_key();
      if (c == '\n') ++line_;
    }
    return absl::OkStatus();
  }

  // finish: ends the last key (a trace need not end with a newline).
  void finish() {
    if (error_.ok()) end_key();
  }

 private:
  void end_key() {
    if (in_num_) out_.push_back(cur_);
    cur_ = 0;
    in_num_ = false;
  }
  absl::Status fail(const std::string& why) {
    error_ = absl::InvalidArgumentError(absl::StrCat(line_, ": ", why));
    return error_;
  }

  std::vector<std::uint64_t>& out_;
  std::uint64_t cur_ = 0;
  bool in_num_ = false;
  std::uint64_t line_ = 1;
  absl::Status error_;
};

}  // namespace larder::sim

#endif  // LARDER_BENCH_SIM_TRACE_READER_H_
