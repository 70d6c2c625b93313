// SPDX-License-Identifier: Apache-2.0
//
// larder-sim's trace reader (bench/sim/trace_reader.h): keys split across
// chunks, and the bytes it must refuse rather than misread (issue 10's audit:
// a key above 2^64-1 used to wrap silently into another key, and any stray
// byte split a key in two).
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "bench/sim/trace_reader.h"
#include "gtest/gtest.h"

namespace larder::sim {
namespace {

// parse: text fed in chunks of `chunk` bytes.
absl::Status parse(const std::string& text, std::vector<std::uint64_t>& keys,
                   std::size_t chunk = 1) {
  TraceParser p(keys);
  for (std::size_t i = 0; i < text.size(); i += chunk) {
    if (absl::Status s = p.feed(text.data() + i, std::min(chunk, text.size() - i)); !s.ok()) {
      return s;
    }
  }
  p.finish();
  return absl::OkStatus();
}

TEST(TraceParserTest, ReadsKeysAcrossChunkBoundaries) {
  const std::string text = "1\n22\r\n333\n\n18446744073709551615\n0\n 7\t8\n42";
  const std::vector<std::uint64_t> want = {1, 22, 333, 18446744073709551615ull, 0, 7, 8, 42};
  for (std::size_t chunk :
       {std::size_t{1}, std::size_t{2}, std::size_t{3}, std::size_t{7}, text.size()}) {
    std::vector<std::uint64_t> keys;
    ASSERT_TRUE(parse(text, keys, chunk).ok()) << chunk;
    EXPECT_EQ(keys, want) << chunk;
  }
}

TEST(TraceParserTest, KeyAbove2To64IsAnErrorNamingTheLine) {
  for (const char* big : {"18446744073709551616", "18446744073709551620", "99999999999999999999",
                          "100000000000000000000000"}) {
    std::vector<std::uint64_t> keys;
    const absl::Status s = parse(std::string("5\n6\n") + big + "\n7\n", keys, 3);
    ASSERT_FALSE(s.ok()) << big;
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(absl::StartsWith(s.message(), "3: key larger than 2^64-1")) << s;
    EXPECT_EQ(keys, (std::vector<std::uint64_t>{5, 6})) << "nothing wrapped was added";
  }
}

TEST(TraceParserTest, StrayBytesAreErrorsNotSeparators) {
  for (const char* bad : {"12abc34", "-5", "1.5", "1,2", "7\x80"}) {
    std::vector<std::uint64_t> keys;
    const absl::Status s = parse(std::string("1\n") + bad + "\n", keys);
    ASSERT_FALSE(s.ok()) << bad;
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(absl::StartsWith(s.message(), "2: unexpected byte 0x")) << s;
  }
  // Once failed, the parser stays failed.
  std::vector<std::uint64_t> keys;
  TraceParser p(keys);
  EXPECT_FALSE(p.feed("x", 1).ok());
  EXPECT_FALSE(p.feed("1\n", 2).ok());
  p.finish();
  EXPECT_TRUE(keys.empty());
}

}  // namespace
}  // namespace larder::sim
