// SPDX-License-Identifier: Apache-2.0
// The in-process setup with the user's own value type (scripts/compile_cost.sh):
// Cache<int, User> over a LocalStore. No explicit instantiation in larder
// covers it, so this file shows what the compiled core saves for any <K, V>.
#include <larder/larder.h>

#include <cstdint>
#include <string>

struct User {
  std::int64_t id = 0;
  std::string name;
  std::string email;
};

absl::StatusOr<User> load_user(int id);

absl::StatusOr<User> user(int id) {
  using namespace std::chrono_literals;
  static auto users = larder::make_local_cache<int, User>({.max_entries = 10'000},
                                                          {.ttl = 30s, .loader = load_user});
  return users.get(id);
}
