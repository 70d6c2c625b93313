// SPDX-License-Identifier: Apache-2.0
// The reference for scripts/compile_cost.sh: what any service file over
// abseil, hiredis and the standard containers pays before it uses larder.
#include <hiredis/hiredis.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

absl::StatusOr<std::string> lookup(long id) {
  static std::mutex mu;
  static absl::flat_hash_map<long, std::string> cache;
  static std::unordered_map<long, std::vector<std::string>> history;
  static std::map<std::string, long> by_name;
  std::lock_guard<std::mutex> lock(mu);
  if (auto it = cache.find(id); it != cache.end()) return it->second;
  redisContext* c = redisConnect("127.0.0.1", 6379);
  if (c == nullptr) return absl::UnavailableError("no redis");
  redisFree(c);
  std::string v = absl::StrCat("user-", id);
  cache.emplace(id, v);
  history[id].push_back(v);
  by_name[v] = id;
  std::function<std::optional<std::string>(long)> f = [&](long k) -> std::optional<std::string> {
    if (auto it = cache.find(k); it != cache.end()) return it->second;
    return std::nullopt;
  };
  return *f(id);
}
