// SPDX-License-Identifier: Apache-2.0
//
// The client's reply reader under hostile replies, without a server: a fake
// server on a socketpair sends bytes, the client's I/O loop (internal::run_on,
// as every RedisClient call runs it) reads them. Regressions from
// tests/fuzz/fuzz_redis_reply.
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "gtest/gtest.h"
#include "src/redis_socket.h"

namespace larder {
namespace {

using std::chrono::milliseconds;

struct FakeServer {
  int sv[2] = {-1, -1};
  internal::RedisContextPtr c;

  explicit FakeServer(std::string_view sent) {
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    EXPECT_EQ(::write(sv[1], sent.data(), sent.size()), static_cast<ssize_t>(sent.size()));
    ::shutdown(sv[1], SHUT_WR);
    c.reset(redisConnectFd(sv[0]));
    EXPECT_NE(::fcntl(c->fd, F_SETFL, ::fcntl(c->fd, F_GETFL) | O_NONBLOCK), -1);
    c->flags &= ~REDIS_BLOCK;
    internal::bound_reply_arrays(c.get());  // what connect_nonblocking_to does
  }
  ~FakeServer() { ::close(sv[1]); }

  absl::Status ping(std::size_t n, std::vector<std::string>* seen = nullptr) {
    std::vector<std::string_view> args{"PING"};
    std::vector<RedisArgs> cmds(n, RedisArgs(args));
    return internal::run_on(
        c.get(), cmds,
        [&](std::size_t, RedisReplyRef r) {
          if (seen != nullptr) seen->push_back(std::to_string(r.size()));
        },
        "PING", milliseconds(1000));
  }
};

// Found by fuzz_redis_reply: 14 bytes announcing a 2^31-1 element array made
// hiredis calloc 16 GiB up front (14 s and 1 GB RSS under ASan before the
// fuzzer's timeout). The call now fails at once, out of memory, and nothing
// is allocated.
TEST(RedisReplyLimitsTest, HugeArrayHeaderIsRefusedBeforeAllocating) {
  FakeServer s(std::string_view("*3\r\n$3\r\nfoo\r\n*2147483647\r\nNG\ra\n\r\n"));
  const auto t0 = std::chrono::steady_clock::now();
  const absl::Status st = s.ping(1);
  EXPECT_EQ(st.code(), absl::StatusCode::kResourceExhausted) << st;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, milliseconds(1000));
}

TEST(RedisReplyLimitsTest, ArraysUpToTheLimitStillRead) {
  std::string sent = "*" + std::to_string(internal::kMaxReplyElements) + "\r\n";
  for (int i = 0; i < internal::kMaxReplyElements; ++i) sent += ":1\r\n";
  sent += "*2\r\n+a\r\n+b\r\n";
  // More than a socket buffer: feed it from a thread-free loop is not possible,
  // so check the header alone is accepted: a truncated array is a network
  // error (EOF), not out of memory.
  FakeServer s(std::string_view(sent).substr(0, 64));
  const absl::Status st = s.ping(1);
  EXPECT_NE(st.code(), absl::StatusCode::kResourceExhausted) << st;
  EXPECT_FALSE(st.ok());

  FakeServer small(std::string_view("*2\r\n+a\r\n+b\r\n*0\r\n"));
  std::vector<std::string> seen;
  ASSERT_TRUE(small.ping(2, &seen).ok());
  EXPECT_EQ(seen, (std::vector<std::string>{"2", "0"}));
}

}  // namespace
}  // namespace larder
