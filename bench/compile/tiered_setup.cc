// SPDX-License-Identifier: Apache-2.0
// The README's two-tier setup, as a user's file (scripts/compile_cost.sh):
// Cache<long, std::string> over TieredStore(LocalStore, RedisStore).
#include <larder/larder.h>
#include <larder/redis.h>

#include <string>

absl::StatusOr<std::string> load_user(long id);

absl::StatusOr<std::string> user(long id) {
  static auto users =
      larder::make_tiered_cache<long, std::string>("redis://10.0.0.5:6379",
                                                   {.ttl = std::chrono::minutes(5),
                                                    .stale_if_error = std::chrono::hours(1),
                                                    .loader = load_user},
                                                   {.key_prefix = "users:v1:"});
  return users.get(id);
}
