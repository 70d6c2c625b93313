// SPDX-License-Identifier: Apache-2.0
//
// crc32c: the CRC-32C (Castagnoli) checksum, in portable software.
//
// The write-back journal (internal/journal.h) checksums every record with it.
// CRC-32C rather than the zlib CRC-32: it detects more error patterns at the
// record sizes a journal writes (Castagnoli, "Optimization of Cyclic
// Redundancy-Check Codes with 24 and 32 Parity Bits", 1993), and it is what
// LevelDB, RocksDB and ext4 use for the same job, so its check values are easy
// to verify against. This is the slicing-by-8 table method (Intel's
// "slicing-by-8", Kounavis & Berry 2005): eight 256-entry tables built at
// compile time, eight input bytes per step, roughly 1-2 GB/s, with no
// dependency on SSE4.2 (a hardware path is a later optimisation; the journal
// is bound by write()/fsync, not by the checksum).
//
// Thread-safety: pure functions over constant tables.
//
// Example:
//   std::uint32_t c = larder::internal::crc32c("123456789");   // 0xE3069283
//   c = larder::internal::crc32c_extend(c, more_bytes);          // running CRC
#ifndef LARDER_INTERNAL_CRC32C_H_
#define LARDER_INTERNAL_CRC32C_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace larder::internal {

namespace crc32c_internal {

inline constexpr std::uint32_t kPoly = 0x82F63B78u;  // reflected Castagnoli polynomial

using Tables = std::array<std::array<std::uint32_t, 256>, 8>;

constexpr Tables make_tables() {
  Tables t{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1u) ? (c >> 1) ^ kPoly : c >> 1;
    t[0][i] = c;
  }
  for (std::size_t s = 1; s < 8; ++s) {
    for (std::uint32_t i = 0; i < 256; ++i) {
      t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xFFu];
    }
  }
  return t;
}

inline constexpr Tables kTables = make_tables();

}  // namespace crc32c_internal

// crc32c_extend: the CRC-32C of (the bytes that produced `crc`) followed by
// `data`. crc32c_extend(0, x) == crc32c(x).
inline std::uint32_t crc32c_extend(std::uint32_t crc, std::string_view data) {
  const auto& t = crc32c_internal::kTables;
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  std::size_t n = data.size();
  std::uint32_t c = ~crc;
  while (n >= 8) {
    const std::uint32_t lo =
        c ^ (static_cast<std::uint32_t>(p[0]) | static_cast<std::uint32_t>(p[1]) << 8 |
             static_cast<std::uint32_t>(p[2]) << 16 | static_cast<std::uint32_t>(p[3]) << 24);
    c = t[7][lo & 0xFFu] ^ t[6][(lo >> 8) & 0xFFu] ^ t[5][(lo >> 16) & 0xFFu] ^ t[4][lo >> 24] ^
        t[3][p[4]] ^ t[2][p[5]] ^ t[1][p[6]] ^ t[0][p[7]];
    p += 8;
    n -= 8;
  }
  while (n-- > 0) c = t[0][(c ^ *p++) & 0xFFu] ^ (c >> 8);
  return ~c;
}

// crc32c: the CRC-32C of `data`.
inline std::uint32_t crc32c(std::string_view data) { return crc32c_extend(0, data); }

}  // namespace larder::internal

#endif  // LARDER_INTERNAL_CRC32C_H_
