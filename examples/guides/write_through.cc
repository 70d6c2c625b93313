// SPDX-License-Identifier: Apache-2.0
// docs/guides/write-through.md: writes through the cache to the system of record.
#include <larder/larder.h>

#include <cstdio>
#include <map>
#include <span>
#include <string>
#include <utility>

#include "guide.h"

using guide::ensure;
using namespace std::chrono_literals;

// snippet:write_through:begin
struct AccountDb {  // stands in for the system of record
  std::map<int, std::string> rows;
  bool down = false;
  absl::Status upsert(std::span<const std::pair<int, std::string>> batch) {
    if (down) return absl::UnavailableError("database down");
    for (const auto& [id, email] : batch) rows[id] = email;
    return absl::OkStatus();
  }
  absl::Status remove(std::span<const int> ids) {
    for (int id : ids) rows.erase(id);
    return absl::OkStatus();
  }
};

void write_through(AccountDb& db) {
  auto clock = std::make_shared<larder::ManualClock>();  // time moves only when told
  auto emails = larder::make_local_cache<int, std::string>(
      {.max_entries = 100'000}, {.ttl = 10min,
                                 .loader = [&db](int id) -> absl::StatusOr<std::string> {
                                   auto it = db.rows.find(id);
                                   if (it == db.rows.end())
                                     return absl::NotFoundError("no account");
                                   return it->second;
                                 },
                                 .write_mode = larder::WriteMode::kWriteThrough,
                                 .writer = {.write = [&db](auto batch) { return db.upsert(batch); },
                                            .erase = [&db](auto ids) { return db.remove(ids); }},
                                 .clock = clock});

  ensure(emails.put(7, "ada@example.com").ok(), "written");
  ensure(db.rows[7] == "ada@example.com", "the database has it when put returns");
  ensure(emails.get_if_present(7) == "ada@example.com", "and so does the cache");

  db.down = true;
  absl::Status s = emails.put(7, "ada@example.org");
  ensure(absl::IsUnavailable(s), "the writer's error is put's error");
  ensure(emails.get_if_present(7) == "ada@example.com", "the cache is left as it was");
  db.down = false;

  ensure(emails.erase(7).ok() && !db.rows.contains(7), "erase deletes through writer.erase");
  ensure(absl::IsNotFound(emails.get(7).status()), "and drops the cached copy");
  ensure(emails.stats().writes == 2 && emails.stats().write_failures == 1,
         "a put and an erase written, one failed");
}
// snippet:write_through:end

int main() {
  AccountDb db;
  write_through(db);
  std::puts("write-through: ok");
  return 0;
}
