// SPDX-License-Identifier: Apache-2.0
//
// Fuzz target: the Redis client's reply handling. A fake server on a
// socketpair has already sent the input's bytes (arbitrary RESP: nested
// arrays, huge and negative lengths, garbage, a partial frame) and then
// either closed its end (EOF) or stays silent. The client runs a pipeline of
// N PINGs through the same I/O loop every RedisClient call uses
// (internal::run_on, src/redis_client.cc) with a short command timeout.
//
// Input: u8 (N = 1 + n % 4; bit 7: keep the connection open after the
// bytes), then the bytes the server sends.
//
// Properties beyond "no crash":
//   * never blocks past its deadline: a silent server (partial frame, or
//     fewer than N frames) costs at most the timeout plus scheduling slack;
//   * never reads past a frame: on success exactly N replies are handed
//     over, in order, each equal to what a strict reference RESP parser
//     finds in that frame, and every byte after the N-th frame is still
//     there (in hiredis' reader buffer or the socket) for the next reply;
//   * frames the reference accepts are accepted: if the first N frames are
//     complete, well-formed RESP2, the call succeeds.
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.h"
#include "redis_socket.h"

namespace {

using std::chrono::milliseconds;
using Steady = std::chrono::steady_clock;

constexpr milliseconds kTimeout{20};
constexpr milliseconds kSlack{2000};  // scheduling under ASan on a busy machine
constexpr int kMaxDepth = 7;          // hiredis 0.14 refuses deeper nesting

// A frame as the reference parser sees it.
struct Frame {
  char type = 0;  // + - : $ *
  std::string str;
  long long integer = 0;
  bool nil = false;
  std::vector<Frame> elements;
};

enum class Ref { kOk, kIncomplete, kBad };

// A strict RESP2 reader: canonical decimal numbers, lengths -1 or 0..(what
// fits), CRLF terminators, no CR or LF inside a line.
struct RefParser {
  std::string_view in;
  std::size_t pos = 0;
  long long elements = 0;  // announced by the current frame's arrays (kMaxReplyElements in all)

  Ref line(std::string_view& out) {
    const std::size_t cr = in.find('\r', pos);
    const std::size_t lf = in.find('\n', pos);
    if (lf != std::string_view::npos && (cr == std::string_view::npos || lf < cr)) return Ref::kBad;
    if (cr == std::string_view::npos || cr + 1 >= in.size()) return Ref::kIncomplete;
    if (in[cr + 1] != '\n') return Ref::kBad;
    out = in.substr(pos, cr - pos);
    pos = cr + 2;
    return Ref::kOk;
  }
  static bool number(std::string_view s, long long& v) {
    bool neg = false;
    if (!s.empty() && s[0] == '-') {
      neg = true;
      s.remove_prefix(1);
    }
    // Canonical decimal only (as hiredis' string2ll): no "-0", no leading zero.
    if (s.empty() || s.size() > 18 || (s[0] == '0' && (s.size() > 1 || neg))) return false;
    v = 0;
    for (char c : s) {
      if (c < '0' || c > '9') return false;
      v = v * 10 + (c - '0');
    }
    if (neg) v = -v;
    return true;
  }
  Ref frame(Frame& f, int depth) {
    if (pos >= in.size()) return Ref::kIncomplete;
    if (depth == 0) elements = 0;
    f.type = in[pos++];
    std::string_view l;
    if (Ref r = line(l); r != Ref::kOk) return r;
    switch (f.type) {
      case '+':
      case '-':
        f.str = l;
        return Ref::kOk;
      case ':':
        return number(l, f.integer) ? Ref::kOk : Ref::kBad;
      case '$': {
        long long n = 0;
        if (!number(l, n) || n < -1 || n > (1LL << 29)) return Ref::kBad;
        if (n == -1) {
          f.nil = true;
          return Ref::kOk;
        }
        if (in.size() - pos < static_cast<std::size_t>(n) + 2) return Ref::kIncomplete;
        f.str = in.substr(pos, static_cast<std::size_t>(n));
        if (in.substr(pos + n, 2) != "\r\n") return Ref::kBad;
        pos += static_cast<std::size_t>(n) + 2;
        return Ref::kOk;
      }
      case '*': {
        long long n = 0;
        if (!number(l, n) || n < -1 || n > larder::internal::kMaxReplyElements) return Ref::kBad;
        if (n == -1) {
          f.nil = true;
          return Ref::kOk;
        }
        if (n > 0 && depth + 1 > kMaxDepth) return Ref::kBad;
        elements += n;
        if (elements > larder::internal::kMaxReplyElements) return Ref::kBad;
        for (long long i = 0; i < n; ++i) {
          f.elements.emplace_back();
          if (Ref r = frame(f.elements.back(), depth + 1); r != Ref::kOk) return r;
        }
        return Ref::kOk;
      }
      default:
        return Ref::kBad;
    }
  }
};

bool same(larder::RedisReplyRef r, const Frame& f) {
  using T = larder::RedisReplyType;
  switch (f.type) {
    case '+':
      return r.type() == T::kStatus && r.str() == f.str;
    case '-':
      return r.type() == T::kError && r.str() == f.str;
    case ':':
      return r.type() == T::kInteger && r.integer() == f.integer;
    case '$':
      if (f.nil) return r.type() == T::kNil;
      return r.type() == T::kString && r.str() == f.str;
    case '*':
      if (f.nil) return r.type() == T::kNil;
      if (r.type() != T::kArray || r.size() != f.elements.size()) return false;
      for (std::size_t i = 0; i < f.elements.size(); ++i) {
        if (!same(r[i], f.elements[i])) return false;
      }
      return r[f.elements.size()].type() == T::kNil;  // past the end: nil, never UB
    default:
      return false;
  }
}

// The bytes still readable on fd without blocking (fd is non-blocking).
std::size_t drain(int fd) {
  std::size_t n = 0;
  char buf[4096];
  for (;;) {
    const ssize_t r = ::recv(fd, buf, sizeof(buf), 0);
    if (r <= 0) return n;
    n += static_cast<std::size_t>(r);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  larder::fuzz::Input in(data, size);
  const std::uint8_t head = in.byte();
  const std::size_t n = 1 + head % 4;
  const bool keep_open = (head & 0x80) != 0;
  const std::string_view sent = in.rest();

  int sv[2];
  FUZZ_CHECK(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
  const int server = sv[1];
  std::size_t off = 0;
  while (off < sent.size()) {  // the input fits in the socket buffer (-max_len)
    const ssize_t w = ::write(server, sent.data() + off, sent.size() - off);
    FUZZ_CHECK(w > 0);
    off += static_cast<std::size_t>(w);
  }
  if (!keep_open) ::shutdown(server, SHUT_WR);

  larder::internal::RedisContextPtr c(redisConnectFd(sv[0]));
  FUZZ_CHECK(c != nullptr && c->err == 0);
  FUZZ_CHECK(::fcntl(c->fd, F_SETFL, ::fcntl(c->fd, F_GETFL) | O_NONBLOCK) == 0);
  c->flags &= ~REDIS_BLOCK;
  larder::internal::install_reply_functions(c.get());  // as connect_nonblocking_to does

  // The reference's view of the first n frames.
  RefParser ref{sent};
  std::vector<Frame> frames(n);
  Ref verdict = Ref::kOk;
  for (std::size_t i = 0; i < n && verdict == Ref::kOk; ++i) verdict = ref.frame(frames[i], 0);

  std::vector<std::string_view> ping{"PING"};
  std::vector<larder::RedisArgs> cmds(n, larder::RedisArgs(ping));
  std::size_t replies = 0;
  bool match = true;
  const auto t0 = Steady::now();
  const absl::Status s = larder::internal::run_on(
      c.get(), cmds,
      [&](std::size_t i, larder::RedisReplyRef r) {
        FUZZ_CHECK(i == replies);
        ++replies;
        if (verdict == Ref::kOk && !same(r, frames[i])) {
          match = false;
        }
      },
      "FUZZ", kTimeout);
  const auto took = Steady::now() - t0;
  if (took > kTimeout + kSlack) {
    std::fprintf(stderr, "run_on took %lld ms (timeout %lld ms): %s\n",
                 static_cast<long long>(std::chrono::duration_cast<milliseconds>(took).count()),
                 static_cast<long long>(kTimeout.count()), s.ToString().c_str());
    FUZZ_CHECK(took <= kTimeout + kSlack);
  }
  if (verdict == Ref::kOk) {
    if (!s.ok()) std::fprintf(stderr, "run_on: %s\n", s.ToString().c_str());
    FUZZ_CHECK(s.ok());
  }
  if (s.ok()) {
    FUZZ_CHECK(replies == n);
    if (verdict == Ref::kOk) {
      FUZZ_CHECK(match);
      const std::size_t left = (c->reader->len - c->reader->pos) + drain(c->fd);
      FUZZ_CHECK(left == sent.size() - ref.pos);
    }
  } else {
    FUZZ_CHECK(s.code() == absl::StatusCode::kDeadlineExceeded ||
               s.code() == absl::StatusCode::kUnavailable ||
               s.code() == absl::StatusCode::kInternal ||
               s.code() == absl::StatusCode::kResourceExhausted ||
               s.code() == absl::StatusCode::kDataLoss);
    // EOF was there from the start: no timeout, unless the machine was so
    // busy that the deadline passed before the first poll.
    if (!keep_open && took < kTimeout) FUZZ_CHECK(s.code() != absl::StatusCode::kDeadlineExceeded);
  }
  ::close(server);
  return 0;
}
