// SPDX-License-Identifier: Apache-2.0
// docs/guides/write-back.md: write-back, the journal, and recovery after a crash.
#include <larder/larder.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <utility>

#include "guide.h"

using guide::ensure;
using namespace std::chrono_literals;

// snippet:write_back:begin
struct ViewsDb {  // page -> total views; the upsert of a total is idempotent
  std::map<std::string, int64_t> rows;
  int writes = 0;
  absl::Status upsert(std::span<const std::pair<std::string, int64_t>> batch) {
    ++writes;
    for (const auto& [page, total] : batch) rows[page] = total;
    return absl::OkStatus();
  }
};

larder::Cache<std::string, int64_t> open_views(ViewsDb& db, const std::string& journal,
                                               const std::shared_ptr<larder::ManualClock>& clock) {
  return larder::make_local_cache<std::string, int64_t>(
      {.max_entries = 100'000},
      {.ttl = 1h,
       .loader = [&db](const std::string& page) -> absl::StatusOr<int64_t> {
         auto it = db.rows.find(page);
         return it == db.rows.end() ? 0 : it->second;
       },
       .write_mode = larder::WriteMode::kWriteBack,
       .writer = {.write = [&db](auto batch) { return db.upsert(batch); }},
       .write_back = {.delay = 5s,  // a dirty key is written within 5 s
                      .journal = journal,
                      .fsync = larder::FsyncPolicy::kEveryWrite},
       .clock = clock});
}

void write_back(const std::string& journal) {
  auto clock = std::make_shared<larder::ManualClock>();  // time moves only when told
  ViewsDb db;

  // The service (a child process here) acknowledges three views, then is killed
  // (SIGKILL: no destructor, no flush) before its flusher wrote them.
  pid_t pid = fork();
  if (pid == 0) {
    auto views = open_views(db, journal, clock);
    for (int i = 0; i < 3; ++i) (void)views.merge("/home", 1, std::plus<>());
    raise(SIGKILL);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  ensure(WIFSIGNALED(status) && db.rows.empty(), "the service died; the database has nothing");

  // The next start on the same journal replays what was acknowledged.
  auto views = open_views(db, journal, clock);
  ensure(views.stats().journal_replayed >= 1, "the journal was replayed at construction");
  ensure(views.get("/home").value() == 3, "replayed writes are readable at once");
  ensure(views.flush().ok() && db.rows["/home"] == 3, "and reach the database");

  // Five more views: acknowledged at once, written later as one row.
  for (int i = 0; i < 5; ++i) (void)views.merge("/home", 1, std::plus<>());
  ensure(db.rows["/home"] == 3 && views.stats().dirty == 1, "acknowledged, not yet written");
  const int writes_before = db.writes;
  ensure(views.flush().ok() && db.rows["/home"] == 8, "flush writes what was acknowledged");
  ensure(db.writes == writes_before + 1, "five increments, one Writer call");
}
// snippet:write_back:end

int main() {
  char dir_template[] = "/tmp/larder-guide-XXXXXX";
  const char* dir = mkdtemp(dir_template);
  ensure(dir != nullptr, "a temporary directory");
  write_back(std::string(dir) + "/views");
  std::filesystem::remove_all(dir);
  std::puts("write-back: ok");
  return 0;
}
