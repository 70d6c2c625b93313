// SPDX-License-Identifier: Apache-2.0
//
// Private to src/: the hiredis handles and the raw connect shared by
// RedisClient (src/redis_client.cc) and RedisInvalidationBus'
// receiving connection (src/redis_invalidation_bus.cc). Not installed.
//
// Both drive their sockets themselves against deadlines, so a connection
// leaves connect_nonblocking() non-blocking, with hiredis' REDIS_BLOCK flag
// cleared (redisGetReply then never blocks) and TCP keep-alive on. What each
// does next (AUTH and SELECT for the pool; AUTH and SUBSCRIBE for the bus)
// stays with its owner. The pool then makes its reads block with a receive
// timeout (make_reads_block), saving a poll() per reply; the bus keeps
// polling, since it waits on its socket and a wake-up pipe at once.
#ifndef LARDER_SRC_REDIS_SOCKET_H_
#define LARDER_SRC_REDIS_SOCKET_H_

#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "larder/internal/errno_text.h"
#include "larder/internal/redis_status.h"
#include "larder/redis/client.h"

namespace larder::internal {

inline timeval to_timeval(std::chrono::milliseconds d) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(d.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((d.count() % 1000) * 1000);
  return tv;
}

// kMaxReplyElements: the most array elements one reply may announce, all
// its nested arrays together. An array's element table (8 bytes per element)
// is allocated as soon as the reader reads the "*<n>" header, before any
// element arrives, so 14 bytes from a broken or hostile server
// ("*2147483647\r\n") made it calloc 16 GiB (found by
// tests/fuzz/fuzz_redis_reply). A cap per array was not enough: each element
// of an array may itself be an array announcing the cap, so every further 11
// bytes ("*1048576\r\n") allocated another 8 MiB. The budget is therefore per
// reply: the sum of the lengths of every array in it, at every depth. A reply
// over it fails the call with kResourceExhausted (reply_read_status: "reply
// refused: its arrays announce more than 1048576 elements") and the
// connection is closed; at most 8 MiB of element tables (plus one reply
// object per element that actually arrived) are ever allocated for a reply.
// larder's own commands stay far below (MGET/UNLINK/SCAN are chunked by
// batch_chunk); a user's command() answered by more than 2^20 elements in all
// (KEYS on a huge database) must be split, e.g. with SCAN.
inline constexpr int kMaxReplyElements = 1 << 20;

// ReplyBudget: the reply a connection's reader is reading now: how many
// elements its arrays announced so far, and whether it was refused. Lives in
// the reader's privdata (hiredis hands it to every read task), owned by the
// RedisContextPtr (RedisContextDeleter frees it).
struct ReplyBudget {
  std::int64_t elements = 0;
  bool refused = false;
};

// Reply objects. Every reader of ours builds larder's own redisReply objects
// (install_reply_functions): the same struct hiredis builds, in one
// allocation per object where hiredis makes two: a string reply's bytes
// follow its redisReply in the same block, and so does an array's element
// table. A 100-key MGET reply is then 101 allocations, not 202 (hiredis
// 0.14 also callocs each object). Such replies are freed by free_reply
// (RedisReplyPtr does), never by freeReplyObject.

// new_reply: a zeroed redisReply of `type` with `extra` bytes after it (the
// struct's alignment is a pointer's, so a pointer table may follow).
inline redisReply* new_reply(int type, std::size_t extra) {
  if (extra > SIZE_MAX - sizeof(redisReply)) return nullptr;
  auto* r = static_cast<redisReply*>(std::malloc(sizeof(redisReply) + extra));
  if (r == nullptr) return nullptr;
  std::memset(r, 0, sizeof(redisReply));
  r->type = type;
  return r;
}

// adopt: r as element task->idx of its parent array, if it has one.
inline void* adopt(const redisReadTask* task, redisReply* r) {
  if (r != nullptr && task->parent != nullptr) {
    static_cast<redisReply*>(task->parent->obj)->element[task->idx] = r;
  }
  return r;
}

inline void* create_string_reply(const redisReadTask* task, char* str, std::size_t len) {
  if (len == SIZE_MAX) return nullptr;
  redisReply* r = new_reply(task->type, len + 1);
  if (r == nullptr) return nullptr;
  char* bytes = reinterpret_cast<char*>(r + 1);
  if (len > 0) std::memcpy(bytes, str, len);
  bytes[len] = '\0';
  r->str = bytes;
  r->len = len;
  return adopt(task, r);
}

// create_array_reply: an array within the reply's budget; a null return
// makes the reader fail the reply (as out of memory).
inline void* create_array_reply(const redisReadTask* task, int elements) {
  auto* b = static_cast<ReplyBudget*>(task->privdata);
  if (b == nullptr) {
    if (elements > kMaxReplyElements) return nullptr;
  } else {
    if (task->parent == nullptr) *b = ReplyBudget{};  // the root of a new reply
    b->elements += elements;
    if (b->elements > kMaxReplyElements) {
      b->refused = true;
      return nullptr;
    }
  }
  const std::size_t n = elements > 0 ? static_cast<std::size_t>(elements) : 0;
  redisReply* r = new_reply(REDIS_REPLY_ARRAY, n * sizeof(redisReply*));
  if (r == nullptr) return nullptr;
  if (n > 0) {
    r->element = reinterpret_cast<redisReply**>(r + 1);
    std::memset(static_cast<void*>(r->element), 0, n * sizeof(redisReply*));
  }
  r->elements = n;
  return adopt(task, r);
}

inline void* create_integer_reply(const redisReadTask* task, long long value) {
  redisReply* r = new_reply(REDIS_REPLY_INTEGER, 0);
  if (r == nullptr) return nullptr;
  r->integer = value;
  return adopt(task, r);
}

inline void* create_nil_reply(const redisReadTask* task) {
  return adopt(task, new_reply(REDIS_REPLY_NIL, 0));
}

// free_reply: frees a reply built by these functions, with its elements (a
// partly read array's missing elements are null).
inline void free_reply(void* reply) {
  auto* r = static_cast<redisReply*>(reply);
  if (r == nullptr) return;
  if (r->type == REDIS_REPLY_ARRAY) {
    for (std::size_t i = 0; i < r->elements; ++i) free_reply(r->element[i]);
  }
  std::free(r);
}

inline redisReplyObjectFunctions* larder_reply_functions() {
  static redisReplyObjectFunctions f{&create_string_reply, &create_array_reply,
                                     &create_integer_reply, &create_nil_reply, &free_reply};
  return &f;
}

struct RedisReplyDeleter {
  void operator()(void* r) const { free_reply(r); }
};
using RedisReplyPtr = std::unique_ptr<void, RedisReplyDeleter>;

// install_reply_functions: makes c's reader (a fresh one: nothing read yet)
// build larder's reply objects above and refuse replies whose arrays
// announce more than kMaxReplyElements elements in all. c must be owned by a
// RedisContextPtr (which frees the budget).
inline void install_reply_functions(redisContext* c) {
  redisReader* r = c->reader;
  if (r == nullptr || r->fn == larder_reply_functions()) return;
  r->privdata = new ReplyBudget;
  r->fn = larder_reply_functions();
}

// reply_refused: whether c's reader failed its last reply for the budget.
inline bool reply_refused(const redisContext* c) {
  if (c == nullptr || c->reader == nullptr || c->reader->fn != larder_reply_functions()) {
    return false;
  }
  const auto* b = static_cast<const ReplyBudget*>(c->reader->privdata);
  return b != nullptr && b->refused && c->err == REDIS_ERR_OOM;
}

// reply_read_status: status_from_redis for a failed read of a reply on c,
// naming the reply budget when that was the cause.
inline absl::Status reply_read_status(const redisContext* c, std::string_view what) {
  if (reply_refused(c)) {
    return absl::ResourceExhaustedError(
        "redis " + std::string(what) + ": reply refused: its arrays announce more than " +
        std::to_string(kMaxReplyElements) + " elements in all (kMaxReplyElements)");
  }
  return status_from_redis(c, nullptr, what);
}

// RedisContextDeleter: frees the context and its reader's ReplyBudget.
struct RedisContextDeleter {
  void operator()(redisContext* c) const {
    if (c == nullptr) return;
    if (c->reader != nullptr && c->reader->fn == larder_reply_functions()) {
      delete static_cast<ReplyBudget*>(c->reader->privdata);
      c->reader->privdata = nullptr;
    }
    redisFree(c);
  }
};
using RedisContextPtr = std::unique_ptr<redisContext, RedisContextDeleter>;

// connect_nonblocking_to: a connection to host:port (or unix_socket when
// non-empty) within `timeout`, switched to non-blocking I/O; or why not
// (status_from_redis' codes; kResourceExhausted when hiredis could not
// allocate).
inline absl::StatusOr<RedisContextPtr> connect_nonblocking_to(const std::string& host, int port,
                                                              const std::string& unix_socket,
                                                              std::chrono::milliseconds timeout) {
  const timeval tv = to_timeval(timeout);
  RedisContextPtr c(unix_socket.empty() ? redisConnectWithTimeout(host.c_str(), port, tv)
                                        : redisConnectUnixWithTimeout(unix_socket.c_str(), tv));
  if (c == nullptr) return absl::ResourceExhaustedError("redis connect: out of memory");
  if (c->err != 0) return status_from_redis(c.get(), nullptr, "connect");
  if (c->connection_type == REDIS_CONN_TCP) (void)redisEnableKeepAlive(c.get());
  install_reply_functions(c.get());
  const int fl = ::fcntl(c->fd, F_GETFL);
  if (fl < 0 || ::fcntl(c->fd, F_SETFL, fl | O_NONBLOCK) < 0) {
    return absl::UnavailableError(
        absl::StrCat("redis connect: fcntl(O_NONBLOCK): ", internal::errno_text(errno)));
  }
  c->flags &= ~REDIS_BLOCK;
  return c;
}

// connect_nonblocking: connect_nonblocking_to opts' server (unix_socket when
// set, else host:port) within connect_timeout.
inline absl::StatusOr<RedisContextPtr> connect_nonblocking(const RedisOptions& opts) {
  return connect_nonblocking_to(opts.host, opts.port, opts.unix_socket, opts.connect_timeout);
}

// make_reads_block: switches a connection from connect_nonblocking_to back to
// blocking I/O with SO_RCVTIMEO = timeout, for run_on's ReplyWait::kBlocking:
// a read then waits in the kernel (one syscall, not poll + read) and gives up
// after `timeout` without bytes, which is exactly run_on's progress deadline.
// Sends stay non-blocking per call (MSG_DONTWAIT). REDIS_BLOCK stays cleared:
// hiredis never does I/O on it; larder does.
inline absl::Status make_reads_block(redisContext* c, std::chrono::milliseconds timeout) {
  const timeval tv = to_timeval(timeout);
  const int fl = ::fcntl(c->fd, F_GETFL);
  if (fl < 0 || ::fcntl(c->fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
    return absl::UnavailableError(
        absl::StrCat("redis connect: fcntl(~O_NONBLOCK): ", internal::errno_text(errno)));
  }
  if (::setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0) {
    return absl::UnavailableError(
        absl::StrCat("redis connect: setsockopt(SO_RCVTIMEO): ", internal::errno_text(errno)));
  }
  return absl::OkStatus();
}

// ReplyWait: how run_on waits for a reply that has not arrived yet.
enum class ReplyWait {
  // The socket is non-blocking (connect_nonblocking_to): poll(POLLIN) until
  // the deadline, then read.
  kPoll,
  // The socket blocks with SO_RCVTIMEO = the timeout (make_reads_block): read
  // at once and let the kernel wait. If the read returns empty-handed before
  // the deadline (a signal), the rest of the wait is a poll as in kPoll.
  kBlocking,
};

// IoTrace: what run_on saw on the wire, for the caller's retry decision.
struct IoTrace {
  bool received = false;     // at least one byte of a reply arrived
  bool peer_closed = false;  // it failed because the peer closed the connection
                             // (EOF, ECONNRESET, EPIPE, ECONNABORTED)
};

// run_on: the deadline-driven I/O loop of redis_client.cc's design essay on
// one connection: sends every command, then hands each reply in order to
// on_reply. Fails (status_from_redis' codes; kDeadlineExceeded when the
// server makes no progress for `timeout`) leaving the connection in an
// unknown state: close it. Reads no further than the last reply it needs
// (bytes after it stay in c's reader). `wait` must match the socket's mode
// (kBlocking only after make_reads_block with the same timeout); `trace`, if
// given, is filled in. Declared here for the fuzz target.
absl::Status run_on(redisContext* c, std::span<const RedisArgs> commands, RedisReplyFn on_reply,
                    std::string_view what, std::chrono::milliseconds timeout,
                    ReplyWait wait = ReplyWait::kPoll, IoTrace* trace = nullptr);

// RedisEndpoint: one server a RedisClient routes to, as the bus's receiving
// connection needs it.
struct RedisEndpoint {
  std::string host;
  int port = 0;
  std::string unix_socket;
  std::uint64_t epoch = 0;  // RedisClientAccess::epoch() when chosen
  std::string label() const {
    return unix_socket.empty() ? absl::StrCat(host, ":", port) : absl::StrCat("unix:", unix_socket);
  }
};

// RedisClientAccess: what src/ (the bus) may ask a RedisClient beyond its
// public API. Defined in redis_client.cc.
struct RedisClientAccess {
  // subscribe_endpoint: where a subscriber should connect on its attempt-th
  // session: standalone, the server; Sentinel, the current master (resolved
  // if unknown); Cluster, a node with a closed breaker, a different one for
  // each attempt (pub/sub is broadcast cluster-wide, any node hears all).
  static absl::StatusOr<RedisEndpoint> subscribe_endpoint(RedisClient& client, std::size_t attempt);
  // epoch: changes whenever the Sentinel master changes (0 otherwise); a
  // subscriber connected under another epoch should move.
  static std::uint64_t epoch(const RedisClient& client);
};

}  // namespace larder::internal

#endif  // LARDER_SRC_REDIS_SOCKET_H_
