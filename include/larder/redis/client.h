// SPDX-License-Identifier: Apache-2.0
//
// RedisClient: larder's connection to Redis — a bounded pool of hiredis
// connections, deadline-driven I/O, pipelining, reconnection with backoff and
// a circuit breaker. RedisStore, RedisLock and RedisLoadGuard are built on it;
// several of them may share one client (and so one pool).
//
// How it differs from the obvious "one blocking redisContext per thread with
// SO_RCVTIMEO": larder drives the sockets itself against a deadline that
// restarts whenever bytes move (sends never block; reads block at most
// command_timeout, then poll() what is left), so no call can hang past its
// timeout however the server misbehaves (a SIGSTOPped server, a socket that
// accepts and never answers, a half-open TCP connection); a dead pooled
// connection is replaced without failing the call (a read that finds it
// closed is sent again once, on a checked connection; a write checks it
// first); after `breaker_failures` consecutive failures the breaker opens and
// every call fails at once, without touching the network, until a background
// probe reconnects. Construction never fails because Redis is down:
// connections are opened on demand.
//
// Latency bound of one call: borrow_timeout (only when all pool_size
// connections are busy) + connect_timeout (only when it must open a
// connection) + command_timeout (its I/O: the call fails once no byte has
// moved for command_timeout, which bounds a single command; a large pipeline
// may run longer while the server keeps up). A read whose pooled connection
// the server closed before answering is sent once more (see above), so it may
// take that bound twice. While the breaker is open: immediate.
//
// Errors (absl::Status): kUnavailable (refused, reset, closed, breaker open,
// reconnect backoff), kDeadlineExceeded (connect or command timed out, or no
// pooled connection freed up in borrow_timeout), kPermissionDenied (AUTH
// failed, NOAUTH, NOPERM). Error *replies* (WRONGTYPE, ...) are not call
// failures: they reach the reply callback as RedisReplyType::kError.
//
// Topologies. One RedisClient talks to one of three, chosen by its options
// (or URI, larder/redis/uri.h); everything built on it (RedisStore,
// RedisLock, RedisLoadGuard, RedisInvalidationBus, TieredStore) works
// unchanged over all three:
//   * standalone (host/port or unix_socket): one pool, one breaker;
//   * Redis Cluster (cluster_nodes = seeds): a pool, breaker and reconnect
//     backoff per node. A command goes to the master owning its key's slot
//     (CRC16 of the whole Redis key, key_prefix included, or of its first
//     non-empty {hash tag}). The slot map comes from CLUSTER SLOTS, refreshed
//     by a background thread (after MOVED, CLUSTERDOWN, READONLY or a node
//     error; at most every 200 ms, backing off to 1 s while failing; and every
//     10 s); calls never wait for a refresh. MOVED patches the slot and
//     re-sends; ASK sends ASKING + the command; TRYAGAIN (a multi-key
//     command mid-migration) splits it into single-key commands; CLUSTERDOWN,
//     LOADING and MASTERDOWN back off (5 ms doubling to 100 ms) inside the
//     call's deadline. At most max_redirects per command, then kUnavailable
//     naming the last reply. A pipeline is split by node (MGET, UNLINK, DEL
//     and EXISTS by slot: one command per slot), every node's part is written
//     at once and all sockets are polled together, and replies reach
//     on_reply in the caller's order (split MGETs reassembled by key, integer
//     replies summed). A node that is down fails only its own commands:
//     their replies are not delivered and pipeline() returns the first such
//     error, while commands on healthy nodes ran (writes stand). SCAN walks
//     every master behind an opaque "<master>:<cursor>" cursor. Recovery
//     after a master dies: once the cluster promotes its replica
//     (node-timeout + election) the next refresh finds it, so about
//     2.5 x cluster-node-timeout + 2 s with no user action; until then calls
//     for its slots fail fast (connection refused, then its breaker).
//     key_prefix and hash tags: a prefix holding a whole tag ("{users}:")
//     would put every key in one slot, so it is refused (std::invalid_argument);
//     a prefix starting with "{}" makes Redis ignore braces in user keys.
//     Cluster mode needs db 0 and no unix socket.
//   * Sentinel (sentinels + sentinel_master): the master comes from SENTINEL
//     get-master-addr-by-name, asking each sentinel in turn (the first that
//     answers moves to the front); every new connection checks ROLE, so a
//     demoted master is never written to through a new connection. The
//     master is looked up again on READONLY (then the command is re-sent),
//     after connection errors, and every second; a new address closes the
//     old master's pool. Recovery after a failover: the sentinels' switch
//     plus at most ~1 s.
//
// larder prints nothing: connection losses, breaker transitions and values it
// cannot decode go to RedisOptions::log when set.
//
// Thread-safety: every RedisClient method may be called concurrently.
//
// Example:
//
//   auto client = std::make_shared<larder::RedisClient>(larder::RedisOptions{
//       .host = "10.0.0.7", .key_prefix = "svc:", .command_timeout =
//       std::chrono::milliseconds(50)});
//   const std::string_view ping[] = {"PING"};
//   absl::Status s = client->command(ping, [](std::size_t, larder::RedisReplyRef r) {
//     assert(r.str() == "PONG");
//   }, "PING");
#ifndef LARDER_REDIS_CLIENT_H_
#define LARDER_REDIS_CLIENT_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "larder/clock.h"
#include "larder/metric.h"

namespace larder {

namespace internal {
struct RedisClientAccess;  // src/redis_socket.h
// redis_key_slot: the Redis Cluster hash slot (0..16383) of a whole Redis
// key: CRC-16/XMODEM of its {hash tag} when it has a non-empty one, else of
// the key, mod 16384.
std::uint16_t redis_key_slot(std::string_view key);
}  // namespace internal

// RedisLogLevel / RedisLogHook: where larder's Redis parts report what they
// would otherwise print. The hook may be called from any thread, including the
// breaker's probe thread, and must not call back into the client.
enum class RedisLogLevel { kDebug, kInfo, kWarning, kError };
using RedisLogHook = std::function<void(RedisLogLevel level, std::string_view message)>;

// RedisOptions: where Redis is and how to talk to it. Validated by the
// RedisClient (and so RedisStore) constructor, which throws
// std::invalid_argument naming the bad field.
struct RedisOptions {
  std::string host = "127.0.0.1";
  int port = 6379;
  std::string unix_socket{};           // used instead of host:port when set
  std::string username{}, password{};  // AUTH password, or AUTH username password (ACL)
  int db = 0;                          // SELECT db on every new connection (0: no SELECT)
  std::string key_prefix{};            // namespace for every key this store touches
  std::size_t pool_size = 4;           // connections at most; >= 1
  std::chrono::milliseconds connect_timeout{200}, command_timeout{100};  // both > 0
  std::shared_ptr<Clock> clock{};  // entry ages; null: system_clock()
  // --- added after the first API (append only) ---
  std::chrono::milliseconds borrow_timeout{100};  // wait for a free pooled connection; 0: none
  std::size_t breaker_failures = 5;  // consecutive failures that open the breaker; 0: never
  std::chrono::milliseconds breaker_probe_interval{
      200};  // while open, the probe tries this often; > 0
  std::chrono::milliseconds reconnect_backoff_min{
      10};  // after a failed connect, fail fast this long,
  std::chrono::milliseconds reconnect_backoff_max{1000};  //   doubling per failure up to the max
  std::size_t batch_chunk = 1000;  // most keys per MGET / UNLINK / SCAN step; >= 1
  RedisLogHook log{};              // null: say nothing
  // --- Redis Cluster and Sentinel (see "Topologies" above) ---
  // cluster_nodes: seed nodes "host:port" ("[v6]:port" for IPv6). Non-empty:
  // cluster mode (host, port and unix_socket unused; db must be 0).
  std::vector<std::string> cluster_nodes{};
  // sentinels: sentinel nodes "host:port"; non-empty: Sentinel mode, the
  // master named sentinel_master is looked up through them (host/port unused).
  std::vector<std::string> sentinels{};
  std::string sentinel_master{};
  // max_redirects: cluster MOVED/ASK/TRYAGAIN/CLUSTERDOWN follow-ups per
  // command before the call fails with kUnavailable naming the last reply; >= 1.
  std::size_t max_redirects = 5;
};

enum class RedisReplyType { kString, kArray, kInteger, kNil, kStatus, kError, kOther };

// RedisReplyRef: a view of one hiredis reply, valid only inside the reply
// callback it was passed to. Copy out what you keep.
class RedisReplyRef {
 public:
  RedisReplyType type() const;
  // str: the bytes of a kString, kStatus or kError reply; empty otherwise.
  std::string_view str() const;
  // integer: the value of a kInteger reply; 0 otherwise.
  long long integer() const;
  // size / operator[]: the elements of a kArray reply (size() is 0 otherwise;
  // an index past size() reads as kNil).
  std::size_t size() const;
  RedisReplyRef operator[](std::size_t i) const;
  // status: OK unless this is an error reply, mapped by
  // internal::status_from_redis (NOPERM -> kPermissionDenied, ...).
  absl::Status status(std::string_view what) const;

  explicit RedisReplyRef(const void* reply) : reply_(reply) {}  // a redisReply*

 private:
  const void* reply_;
};

// RedisArgs: one command's arguments, binary-safe, e.g. {"SET", key, value}.
using RedisArgs = std::span<const std::string_view>;
// RedisReplyFn: called once per command, in order, with the command's index.
using RedisReplyFn = absl::FunctionRef<void(std::size_t index, RedisReplyRef reply)>;

// RedisClientStats: what the client has seen since construction.
struct RedisClientStats {
  std::uint64_t connects = 0;          // connections opened (including the probe's)
  std::uint64_t connect_failures = 0;  // connection attempts that failed
  std::uint64_t failures = 0;          // calls that failed on the network (counted by the breaker)
  std::uint64_t fast_failures = 0;  // calls refused without I/O (breaker open, reconnect backoff)
  std::uint64_t dropped = 0;        // connections closed as broken or stale
  std::uint64_t breaker_opens = 0;
  std::uint64_t breaker_closes = 0;
  std::uint64_t probes = 0;          // probe attempts while open
  bool breaker_open = false;         // now (cluster: any master's breaker)
  std::size_t open_connections = 0;  // now (cluster: over every node)
  // --- Cluster and Sentinel (0 for a standalone server) ---
  std::uint64_t moved = 0;               // MOVED redirections followed
  std::uint64_t asks = 0;                // ASK redirections followed
  std::uint64_t tryagains = 0;           // TRYAGAIN replies (retried)
  std::uint64_t cluster_downs = 0;       // CLUSTERDOWN / LOADING / MASTERDOWN replies (retried)
  std::uint64_t topology_refreshes = 0;  // slot maps / master lookups applied
  std::uint64_t topology_refresh_failures = 0;  // refreshes that found no usable answer
  std::uint64_t master_switches = 0;            // Sentinel: the master moved
  // Calls re-sent once on a checked connection because the pooled one they
  // were sent on had been closed by the server before any reply byte (reads
  // only: GET, MGET, EXISTS, PTTL, ... ; standalone servers).
  std::uint64_t retries = 0;
};

class RedisClient {
 public:
  // Throws std::invalid_argument for bad options; never fails because Redis
  // is down (no connection is opened here).
  explicit RedisClient(RedisOptions options);
  // RedisClient: options from a URI (larder/redis/uri.h: redis://,
  // unix://, redis-cluster://, redis-sentinel://) on top of `defaults`, e.g.
  // RedisClient{"redis://cache:6379/2"}. Throws std::invalid_argument for a
  // malformed URI (the message never shows the password) or bad options.
  explicit RedisClient(std::string_view uri, RedisOptions defaults = {});
  ~RedisClient();  // stops the probe thread; waits for nothing else
  RedisClient(const RedisClient&) = delete;
  RedisClient& operator=(const RedisClient&) = delete;

  // command: runs one command on a pooled connection and calls on_reply(0,
  // reply) with its reply. `what` names the operation in error messages.
  absl::Status command(RedisArgs args, RedisReplyFn on_reply, std::string_view what);

  // pipeline: sends every command in one write, then reads the replies in
  // order, calling on_reply(i, reply) for each. A non-OK result means the
  // connection failed part way: replies already delivered must be discarded
  // by the caller. Costs one round trip for the whole batch.
  absl::Status pipeline(std::span<const RedisArgs> commands, RedisReplyFn on_reply,
                        std::string_view what);

  const RedisOptions& options() const;

  // logging / log: whether a log hook is set, and a message to it.
  bool logging() const;
  void log(RedisLogLevel level, std::string_view message) const;

  RedisClientStats stats() const;
  bool breaker_open() const;

  // for_each_metric: the client's metrics (metrics.h), each labelled with
  // `labels`: larder_redis_<stat>_total for the counters of RedisClientStats;
  // per node larder_redis_breaker_open{node} (1: open) and
  // larder_redis_pool_connections{node,state="in_use"|"idle"}; and
  // larder_redis_command_duration_seconds{command,pipeline}: every command()
  // and pipeline() call, by its first command's name (GET, MGET, SET, DEL,
  // UNLINK, EVALSHA, EVAL, PUBLISH, SCAN, or "other"; pipeline="1" for a
  // pipeline of more than one command), breaker refusals included.
  void for_each_metric(std::span<const MetricLabel> labels, MetricCallback out) const;

 private:
  friend struct internal::RedisClientAccess;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace larder

#endif  // LARDER_REDIS_CLIENT_H_
