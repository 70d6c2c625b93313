// SPDX-License-Identifier: Apache-2.0
//
// Fuzz target: journal replay (internal/journal.h) over a whole directory of
// segments built from the input: several segments, numbered with gaps or
// not, each with a good or bad magic, well-formed records (correct CRC, so
// the fuzzer gets past the checksum) of any type and sequence number, and
// then damage: a truncation, a flipped byte, raw bytes appended, or raw
// bytes instead of records. Stray files sit beside them.
//
// Input grammar (every read past the end is zero):
//   u8 segments (1 + n % 6), then per segment:
//     u8 flags: bit0 bad magic, bit1 skip a segment number,
//               bit2 raw segment (u8 len, bytes) instead of records
//     u8 records (n % 9), each: u8 type (1 + n % 4: put, erase, checkpoint,
//        unknown), u8 seq step (0 repeats the last seq), u8 klen % 24, key,
//        u8 vlen % 40, value (a checkpoint's value is its 8-byte mark)
//     u8 damage (n % 4: none, truncate at u16, flip byte at u16 by u8,
//        append u8 len raw bytes)
//
// Properties beyond "no crash":
//   * every replayed record was appended whole: its exact encoding occurs in
//     the segment bytes on disk, after the previous replayed record's;
//   * sequence numbers strictly increase;
//   * open() succeeds (no directory content is an error but I/O failure) and
//     a second open of the same directory after it replays nothing new that
//     was not there before (the first open's new segment is empty).
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.h"
#include "larder/internal/crc32c.h"
#include "larder/internal/journal.h"

namespace {

namespace fs = std::filesystem;
using larder::internal::JournalRecord;

void put_u32(std::string& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFFu));
}
void put_u64(std::string& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFFu));
}

// The segment format of journal.h's essay, written independently of it.
void encode_raw(std::string& out, unsigned char type, std::uint64_t seq, std::string_view key,
                std::string_view value) {
  const std::size_t start = out.size();
  put_u32(out, static_cast<std::uint32_t>(1 + 8 + 4 + key.size() + value.size()));
  put_u32(out, 0);
  out.push_back(static_cast<char>(type));
  put_u64(out, seq);
  put_u32(out, static_cast<std::uint32_t>(key.size()));
  out.append(key);
  out.append(value);
  const std::string_view all(out);
  const std::uint32_t crc = larder::internal::crc32c_extend(
      larder::internal::crc32c(all.substr(start, 4)), all.substr(start + 8));
  for (int i = 0; i < 4; ++i) out[start + 4 + i] = static_cast<char>((crc >> (8 * i)) & 0xFFu);
}

std::string segment_name(const std::string& base, std::uint64_t number) {
  char digits[32];
  std::snprintf(digits, sizeof(digits), "%012llu", static_cast<unsigned long long>(number));
  return base + "." + digits;
}

const fs::path& work_dir() {
  static const fs::path dir = [] {
    // tmpfs when there is one: the journal fsyncs its directory on open.
    std::error_code ec;
    const fs::path root =
        fs::is_directory("/dev/shm", ec) ? fs::path("/dev/shm") : fs::temp_directory_path();
    std::string t = (root / "larder-fuzz-journal.XXXXXX").string();
    if (::mkdtemp(t.data()) == nullptr) std::abort();
    std::atexit([] {
      std::error_code ec;
      fs::remove_all(work_dir(), ec);
    });
    return fs::path(t);
  }();
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  larder::fuzz::Input in(data, size);
  const fs::path& dir = work_dir();
  for (const auto& e : fs::directory_iterator(dir)) fs::remove(e.path());
  const std::string base = (dir / "wb").string();

  // Build the directory. `disk` is every segment's bytes, in number order.
  std::string disk;
  const int segments = 1 + in.byte() % 6;
  std::uint64_t number = 0;
  std::uint64_t seq = 0;
  for (int s = 0; s < segments; ++s) {
    const std::uint8_t flags = in.byte();
    number += (flags & 2) ? 2 : 1;
    std::string seg;
    if (flags & 1) {
      seg.append("LRDRJNL0");
    } else {
      seg.append(larder::internal::journal_internal::kMagic);
    }
    if (flags & 4) {
      seg.append(in.bytes(in.byte()));
    } else {
      const int records = in.byte() % 9;
      for (int r = 0; r < records; ++r) {
        const unsigned char type = static_cast<unsigned char>(1 + in.byte() % 4);
        seq += in.byte();
        const std::string_view key = in.bytes(in.byte() % 24);
        const std::string_view value = in.bytes(in.byte() % 40);
        if (type == 3) {  // checkpoint: no key, an 8-byte mark
          std::string mark;
          put_u64(mark, seq + 1 - std::min<std::uint64_t>(seq + 1, value.size()));
          encode_raw(seg, type, seq, {}, mark);
        } else {
          encode_raw(seg, type, seq, key, value);
        }
      }
    }
    switch (in.byte() % 4) {
      case 1: {
        const std::size_t at = (in.byte() | (in.byte() << 8)) % (seg.size() + 1);
        seg.resize(at);
        break;
      }
      case 2: {
        if (!seg.empty()) {
          const std::size_t at = (in.byte() | (in.byte() << 8)) % seg.size();
          seg[at] = static_cast<char>(seg[at] ^ (in.byte() | 1));
        }
        break;
      }
      case 3:
        seg.append(in.bytes(in.byte()));
        break;
      default:
        break;
    }
    std::ofstream(segment_name(base, number), std::ios::binary) << seg;
    disk += seg;
  }
  // Stray files a replay must ignore.
  std::ofstream(base + ".tmp", std::ios::binary) << "LRDRJNL1garbage";
  std::ofstream(base + ".00000000000x", std::ios::binary) << "x";

  std::vector<JournalRecord> got;
  larder::internal::JournalOptions opts;
  opts.fsync = larder::internal::FsyncPolicy::kNever;
  {
    auto j = larder::internal::Journal::open(
        base, opts, [&](JournalRecord&& r) { got.push_back(std::move(r)); });
    if (!j.ok()) {
      std::fprintf(stderr, "journal open: %s\n", j.status().ToString().c_str());
      FUZZ_CHECK(j.ok());
    }
  }
  std::size_t from = 0;
  std::uint64_t last = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const JournalRecord& r = got[i];
    FUZZ_CHECK(r.type == larder::internal::JournalRecordType::kPut ||
               r.type == larder::internal::JournalRecordType::kErase);
    FUZZ_CHECK(i == 0 || r.seq > last);
    last = r.seq;
    std::string enc;
    encode_raw(enc, static_cast<unsigned char>(r.type), r.seq, r.key, r.value);
    const std::size_t at = disk.find(enc, from);
    FUZZ_CHECK(at != std::string::npos);  // appended whole, in order
    from = at + enc.size();
  }

  // Reopening replays a subset of the same records (the first open added
  // only an empty segment; a journal may also skip what a checkpoint covers).
  std::vector<JournalRecord> again;
  {
    auto j = larder::internal::Journal::open(
        base, opts, [&](JournalRecord&& r) { again.push_back(std::move(r)); });
    FUZZ_CHECK(j.ok());
  }
  FUZZ_CHECK(again.size() <= got.size());
  for (std::size_t i = 0, k = 0; i < again.size(); ++i) {
    while (k < got.size() && got[k].seq != again[i].seq) ++k;
    FUZZ_CHECK(k < got.size() && got[k].key == again[i].key && got[k].value == again[i].value);
  }
  return 0;
}
