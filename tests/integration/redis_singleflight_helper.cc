// SPDX-License-Identifier: Apache-2.0
//
// One of several processes that miss the same key at once
// (redis_lock_test.cc, CrossProcessSingleFlightLoadsOnce). It builds a
// Cache over a RedisStore with a RedisLoadGuard, waits until its stdin
// reaches EOF (the parent closes the pipe once every process is started, so
// all of them miss together), then calls get_or_load. The loader INCRs
// <prefix>loads in Redis (the parent counts loads across processes there) and
// takes a while, so the other processes overlap with it.
//
// usage: redis_singleflight_helper <host> <port> <key_prefix> <key>
//    or: redis_singleflight_helper <uri> - <key_prefix> <key>   (e.g. redis-cluster://...)
// exit status: 0 when the value read is "loaded-value", 1 otherwise.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>

#include "larder/cache.h"
#include "larder/redis.h"

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: %s host port key_prefix key\n", argv[0]);
    return 2;
  }
  larder::RedisOptions o;
  if (std::string_view(argv[1]).find("://") != std::string_view::npos) {
    absl::StatusOr<larder::RedisOptions> parsed = larder::parse_redis_uri(argv[1]);
    if (!parsed.ok()) {
      std::fprintf(stderr, "%s\n", parsed.status().ToString().c_str());
      return 2;
    }
    o = *std::move(parsed);
  } else {
    o.host = argv[1];
    o.port = std::atoi(argv[2]);
  }
  o.key_prefix = argv[3];
  o.command_timeout = std::chrono::milliseconds(2000);  // sanitizers, loaded machine
  auto client = std::make_shared<larder::RedisClient>(o);
  auto store = std::make_shared<larder::RedisStore<std::string, std::string>>(client);
  larder::RedisLoadGuardOptions go;
  go.lock.ttl = std::chrono::seconds(30);
  go.lock.wait = std::chrono::seconds(30);  // never give up waiting in this test
  go.poll_interval = std::chrono::milliseconds(5);
  larder::CacheOptions<std::string, std::string> co;
  co.ttl = std::chrono::minutes(1);
  co.load_guard = std::make_shared<larder::RedisLoadGuard<std::string>>(client, go);
  larder::Cache<std::string, std::string> cache(store, co);

  char buf[16];
  while (::read(0, buf, sizeof buf) > 0) {
  }  // the start line: EOF when the parent closes the pipe

  const std::string counter = "loads";
  auto loader = [&](const std::string&) -> absl::StatusOr<std::string> {
    const std::string key = o.key_prefix + counter;
    const std::string_view incr[] = {"INCR", key};
    absl::Status s = client->command(
        incr, [](std::size_t, larder::RedisReplyRef) {}, "INCR");
    if (!s.ok()) return s;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // a slow system of record
    return std::string("loaded-value");
  };
  absl::StatusOr<std::string> v = cache.get_or_load(argv[4], loader);
  if (!v.ok()) {
    std::fprintf(stderr, "helper %d: %s\n", static_cast<int>(::getpid()),
                 v.status().ToString().c_str());
    return 1;
  }
  return *v == "loaded-value" ? 0 : 1;
}
