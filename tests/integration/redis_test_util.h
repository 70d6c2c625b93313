// SPDX-License-Identifier: Apache-2.0
//
// Helpers for the Redis integration tests: a private redis-server child
// (RedisServer, for tests that need requirepass/ACL, a restart or SIGSTOP),
// a socket that accepts and never answers (HungServer), a free loopback port,
// and options/prefixes for the shared test server.
//
// Every child process is killed by a destructor, so a failing assertion
// cannot leave a server behind.
#ifndef LARDER_TESTS_INTEGRATION_REDIS_TEST_UTIL_H_
#define LARDER_TESTS_INTEGRATION_REDIS_TEST_UTIL_H_

#include <arpa/inet.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "larder/redis.h"
#include "tests/testing/testing.h"

namespace larder::testing {

// Servers the tests start listen below the kernel's ephemeral range
// (net.ipv4.ip_local_port_range). A port inside it can be taken as the source
// port of any client's connect() between the check that it is free and the
// server's bind, or between a kill and a restart on the same port; on two
// loaded cores running tests in parallel, that happened (a private Sentinel
// setup whose servers never started).
inline int ephemeral_port_low() {
  int lo = 0;
  int hi = 0;
  if (FILE* f = std::fopen("/proc/sys/net/ipv4/ip_local_port_range", "r")) {
    if (std::fscanf(f, "%d %d", &lo, &hi) != 2) lo = 0;
    std::fclose(f);
  }
  return lo > 0 ? lo : 32768;
}

// port_bindable: nobody listens on (or holds) loopback TCP port p now.
inline bool port_bindable(int p) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<std::uint16_t>(p));
  const int r = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  ::close(fd);
  return r == 0;
}

// free_port_block: a base port B with B..B+n-1 (and, with `bus`, the cluster
// bus ports B+10000..B+10000+n-1) bindable now and below the ephemeral range;
// -1 if 400 candidates were all taken. Candidates differ per process and per
// call, so tests running in parallel rarely try the same block.
inline int free_port_block(int n, bool bus) {
  static std::atomic<unsigned> calls{0};
  constexpr int kLow = 10000;
  const int span = bus ? 10000 + n : n;
  int high = ephemeral_port_low() - span;      // exclusive
  if (high - kLow < 1000) high = kLow + 1000;  // a tiny range: best effort
  const unsigned seed = static_cast<unsigned>(::getpid()) * 7919u + calls.fetch_add(1) * 6007u;
  for (unsigned t = 0; t < 400; ++t) {
    const int base =
        kLow + static_cast<int>((seed + t * 104729u) % static_cast<unsigned>(high - kLow));
    bool ok = true;
    for (int i = 0; i < n && ok; ++i) {
      ok = port_bindable(base + i) && (!bus || port_bindable(base + 10000 + i));
    }
    if (ok) return base;
  }
  return -1;
}

// free_port: a loopback TCP port nobody listens on right now, below the
// ephemeral range (above).
inline int free_port() { return free_port_block(1, false); }

// unique_prefix: a key prefix no other test (or test run) uses.
inline std::string unique_prefix() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  return std::string("larder-test:") + info->test_suite_name() + "." + info->name() + ":" +
         std::to_string(::getpid()) + ":";
}

// kTestCommandTimeout: the command_timeout of tests that are not about
// timeouts: generous, so a sanitizer build on two loaded cores (where the
// server may not run for a while) never turns a healthy call into an error.
inline constexpr std::chrono::milliseconds kTestCommandTimeout{3000};

// options_for: RedisOptions for the shared test server, TCP.
inline RedisOptions options_for(const RedisAddress& addr, std::string prefix = unique_prefix()) {
  RedisOptions o;
  o.host = addr.host;
  o.port = addr.port;
  o.key_prefix = std::move(prefix);
  o.connect_timeout = kTestCommandTimeout;
  o.command_timeout = kTestCommandTimeout;
  return o;
}

// redis_ping: whether a server answers on port within ~100 ms (any reply,
// even NOAUTH, counts as "up").
inline bool redis_ping(int port) {
  redisContext* c = redisConnectWithTimeout("127.0.0.1", port, timeval{0, 100'000});
  bool up = false;
  if (c != nullptr && c->err == 0) {
    redisSetTimeout(c, timeval{0, 100'000});
    auto* r = static_cast<redisReply*>(redisCommand(c, "PING"));
    up = r != nullptr;
    if (r != nullptr) freeReplyObject(r);
  }
  if (c != nullptr) redisFree(c);
  return up;
}

// RedisServer: a redis-server child on a free loopback port.
class RedisServer {
 public:
  explicit RedisServer(std::vector<std::string> extra_args = {})
      : port_(free_port()), extra_(std::move(extra_args)) {
    char tmpl[] = "/tmp/larder-redis-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    start();
  }
  ~RedisServer() {
    stop();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  int port() const { return port_; }
  bool running() const { return pid_ > 0; }

  // start: launches the server and waits (up to 5 s) until it answers.
  void start() {
    if (pid_ > 0) return;
    std::vector<std::string> args = {"redis-server",
                                     "--port",
                                     std::to_string(port_),
                                     "--bind",
                                     "127.0.0.1",
                                     "--save",
                                     "",
                                     "--appendonly",
                                     "no",
                                     "--dir",
                                     dir_};
    args.insert(args.end(), extra_.begin(), extra_.end());
    pid_ = ::fork();
    if (pid_ == 0) {
      const int devnull = ::open("/dev/null", O_WRONLY);
      ::dup2(devnull, 1);
      ::dup2(devnull, 2);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execvp("redis-server", argv.data());
      ::_exit(127);
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!redis_ping(port_)) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        ADD_FAILURE() << "redis-server exited at start (is it on PATH?)";
        return;
      }
      if (std::chrono::steady_clock::now() > deadline) {
        ADD_FAILURE() << "redis-server did not answer on port " << port_ << " within 5 s";
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }

  // stop: SIGKILL (no shutdown, like a crash) and reap.
  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }

  // pause / resume: SIGSTOP / SIGCONT the server; nothing when it is not
  // running (kill(-1, ...) would signal every process we may signal).
  void pause() {
    if (pid_ > 0) ::kill(pid_, SIGSTOP);
  }
  void resume() {
    if (pid_ > 0) ::kill(pid_, SIGCONT);
  }

  RedisOptions options(std::string prefix = unique_prefix()) const {
    RedisOptions o;
    o.host = "127.0.0.1";
    o.port = port_;
    o.key_prefix = std::move(prefix);
    o.connect_timeout = kTestCommandTimeout;
    o.command_timeout = kTestCommandTimeout;
    return o;
  }

 private:
  int port_;
  std::vector<std::string> extra_;
  std::string dir_;
  pid_t pid_ = -1;
};

// HungServer: a listening socket that never accepts: connects succeed (the
// kernel completes the handshake), commands are never answered.
class HungServer {
 public:
  HungServer() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    ::listen(fd_, 64);
    socklen_t len = sizeof(a);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
  }
  ~HungServer() { ::close(fd_); }
  HungServer(const HungServer&) = delete;
  HungServer& operator=(const HungServer&) = delete;
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

// elapsed: wall time of f(), for bounded-latency assertions.
template <class F>
std::chrono::milliseconds elapsed(F&& f) {
  const auto t0 = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                               t0);
}

}  // namespace larder::testing

#endif  // LARDER_TESTS_INTEGRATION_REDIS_TEST_UTIL_H_
