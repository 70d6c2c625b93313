// SPDX-License-Identifier: Apache-2.0
//
// FUZZ_CHECK: a property a fuzz target asserts beyond "no crash". A failure
// prints the property and aborts, which libFuzzer reports as a crash and
// saves the input (crash-<sha1>) for a regression test.
#ifndef LARDER_TESTS_FUZZ_FUZZ_CHECK_H_
#define LARDER_TESTS_FUZZ_FUZZ_CHECK_H_

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#define FUZZ_CHECK(cond)                                                                    \
  do {                                                                                      \
    if (!(cond)) {                                                                          \
      std::fprintf(stderr, "%s:%d: fuzz property failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                         \
    }                                                                                       \
  } while (0)

namespace larder::fuzz {

// Input: consumes a fuzz input front to back; reads past the end give zeros
// and empty strings, so a target never has to check lengths.
class Input {
 public:
  Input(const std::uint8_t* data, std::size_t size)
      : p_(reinterpret_cast<const char*>(data)), n_(size) {}
  std::uint8_t byte() { return n_ > 0 ? static_cast<std::uint8_t>((--n_, *p_++)) : 0; }
  std::uint32_t u32() {
    std::uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v |= static_cast<std::uint32_t>(byte()) << (8 * i);
    return v;
  }
  std::uint64_t u64() { return u32() | (static_cast<std::uint64_t>(u32()) << 32); }
  // bytes: the next min(len, left) bytes.
  std::string_view bytes(std::size_t len) {
    if (len > n_) len = n_;
    std::string_view s(p_, len);
    p_ += len;
    n_ -= len;
    return s;
  }
  std::string_view rest() { return bytes(n_); }
  std::size_t left() const { return n_; }

 private:
  const char* p_;
  std::size_t n_;
};

}  // namespace larder::fuzz

#endif  // LARDER_TESTS_FUZZ_FUZZ_CHECK_H_
