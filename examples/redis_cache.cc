// SPDX-License-Identifier: Apache-2.0
//
// A Cache in front of Redis, shared by every process of a service:
//   * make_tiered_cache: a LocalStore in front of a RedisStore, with a
//     user's type and value codec (a protobuf would call
//     SerializeToString / ParseFromArray in the same two functions),
//   * RedisLoadGuard, so that when many processes miss one key, one of them
//     asks the database and the others wait for its value,
//   * a log hook (larder prints nothing by itself).
// Works, degraded, without Redis: every call is answered by the loader.
//
// Run: redis_cache [host] [port]        (default 127.0.0.1 6379)
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "larder/redis.h"

struct Profile {
  std::string name;
  int visits = 0;
};

// The user's codec: "<visits>:<name>". Bytes it cannot parse are DataLoss,
// which RedisStore counts and treats as a miss.
struct ProfileCodec {
  static void encode(const Profile& p, std::string& out) {
    out += std::to_string(p.visits);
    out += ':';
    out += p.name;
  }
  static absl::StatusOr<Profile> decode(std::string_view b) {
    const std::size_t colon = b.find(':');
    if (colon == std::string_view::npos || colon == 0) return absl::DataLossError("not a Profile");
    Profile p;
    for (char c : b.substr(0, colon)) {
      if (c < '0' || c > '9') return absl::DataLossError("bad visits");
      p.visits = p.visits * 10 + (c - '0');
    }
    p.name = std::string(b.substr(colon + 1));
    return p;
  }
};

int main(int argc, char** argv) {
  larder::RedisOptions opts;
  opts.host = argc > 1 ? argv[1] : "127.0.0.1";
  opts.port = argc > 2 ? std::atoi(argv[2]) : 6379;
  opts.key_prefix = "example:profiles:v1:";
  opts.log = [](larder::RedisLogLevel, std::string_view m) {
    std::fprintf(stderr, "[redis] %.*s\n", static_cast<int>(m.size()), m.data());
  };
  int db_calls = 0;
  // Two tiers (LocalStore in front of Redis, L1 copies kept coherent across
  // processes by a pub/sub bus, one process loading a missing key while the
  // others wait) with the user's value codec, in one statement.
  auto cache = larder::make_tiered_cache<std::string, Profile, ProfileCodec>(
      opts, {.ttl = std::chrono::seconds(30), .loader = [&](const std::string& user) {
               ++db_calls;
               return Profile{user, 42};
             }});
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<Profile> p = cache.get("ada");
    if (!p.ok()) {
      std::fprintf(stderr, "error: %s\n", p.status().ToString().c_str());
      return 1;
    }
    std::printf("%s: %d visits\n", p->name.c_str(), p->visits);
  }
  const larder::CacheStats s = cache.stats();
  std::printf("database calls: %d, store errors: %llu (Redis %s)\n", db_calls,
              static_cast<unsigned long long>(s.store_errors),
              s.store_errors == 0 ? "reachable" : "unreachable: served from the loader");
  (void)cache.invalidate("ada");
  return 0;
}
