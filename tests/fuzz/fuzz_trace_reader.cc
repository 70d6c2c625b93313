// SPDX-License-Identifier: Apache-2.0
//
// Fuzz target: larder-sim's trace reader (bench/sim/trace_reader.h). Input:
// one byte choosing a chunk size, then the trace's bytes.
//
// Properties: the keys (or the error) do not depend on how the trace is cut
// into chunks; the keys agree with a reference parser written the obvious
// way; keys printed one per line parse back to the same keys.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "bench/sim/trace_reader.h"
#include "fuzz_check.h"

namespace {

struct Parsed {
  std::vector<std::uint64_t> keys;
  absl::Status status;
};

Parsed parse(std::string_view trace, std::size_t chunk) {
  Parsed p;
  larder::sim::TraceParser parser(p.keys);
  for (std::size_t i = 0; i < trace.size() && p.status.ok(); i += chunk) {
    const std::size_t n = std::min(chunk, trace.size() - i);
    p.status = parser.feed(trace.data() + i, n);
  }
  if (p.status.ok()) parser.finish();
  return p;
}

// The reference: split on whitespace; every token all digits and <= 2^64-1.
bool reference(std::string_view trace, std::vector<std::uint64_t>& keys) {
  std::size_t i = 0;
  while (i < trace.size()) {
    const char c = trace[i];
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
      ++i;
      continue;
    }
    std::size_t j = i;
    while (j < trace.size() && trace[j] >= '0' && trace[j] <= '9') ++j;
    if (j == i) return false;  // a byte that is neither
    std::string_view tok = trace.substr(i, j - i);
    while (tok.size() > 1 && tok.front() == '0') tok.remove_prefix(1);
    static constexpr std::string_view kMax = "18446744073709551615";
    if (tok.size() > kMax.size() || (tok.size() == kMax.size() && tok > kMax)) return false;
    std::uint64_t v = 0;
    for (char d : tok) v = v * 10 + static_cast<std::uint64_t>(d - '0');
    keys.push_back(v);
    i = j;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  larder::fuzz::Input in(data, size);
  const std::size_t chunk = 1 + in.byte() % 17;
  const std::string_view trace = in.rest();

  const Parsed whole = parse(trace, trace.size() + 1);
  const Parsed cut = parse(trace, chunk);
  FUZZ_CHECK(whole.status.ok() == cut.status.ok());
  FUZZ_CHECK(whole.status == cut.status);  // same message: same line, same reason
  std::vector<std::uint64_t> ref;
  const bool ref_ok = reference(trace, ref);
  FUZZ_CHECK(ref_ok == whole.status.ok());
  if (!whole.status.ok()) {
    FUZZ_CHECK(whole.status.code() == absl::StatusCode::kInvalidArgument);
    // Keys before the bad byte may have been emitted; they are a prefix of
    // what the reference found before giving up... and never more.
    return 0;
  }
  FUZZ_CHECK(whole.keys == cut.keys);
  FUZZ_CHECK(whole.keys == ref);

  std::string printed;
  for (std::uint64_t k : whole.keys) printed += std::to_string(k) + "\n";
  FUZZ_CHECK(parse(printed, chunk).keys == whole.keys);
  return 0;
}
