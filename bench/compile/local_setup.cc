// SPDX-License-Identifier: Apache-2.0
// The README's in-process setup, as a user's file (scripts/compile_cost.sh).
#include <larder/larder.h>

#include <string>

absl::StatusOr<std::string> load_user(long id);

absl::StatusOr<std::string> user(long id) {
  using namespace std::chrono_literals;
  static auto users = larder::make_local_cache<long, std::string>(
      {.max_entries = 10'000}, {.ttl = 30s, .loader = load_user});
  return users.get(id);
}
