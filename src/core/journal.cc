// SPDX-License-Identifier: Apache-2.0
//
// The write-back journal's file I/O (internal/journal.h has the design):
// segment files, framing, group commit, fdatasync, checkpoints, replay. It
// works on encoded key and value bytes only, so it is compiled once here
// instead of in every file that instantiates a write-back Cache.
#include "larder/internal/journal.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "larder/internal/errno_text.h"

namespace larder::internal {

namespace journal_internal {

void encode_raw(std::string& out, unsigned char type, std::uint64_t seq, std::string_view key,
                std::string_view value) {
  const std::size_t start = out.size();
  const std::size_t body = kMinBody + key.size() + value.size();
  put_u32(out, static_cast<std::uint32_t>(body));
  put_u32(out, 0);  // crc, patched below
  out.push_back(static_cast<char>(type));
  put_u64(out, seq);
  put_u32(out, static_cast<std::uint32_t>(key.size()));
  out.append(key);
  out.append(value);
  std::uint32_t crc = crc32c(std::string_view(out).substr(start, 4));
  crc = crc32c_extend(crc, std::string_view(out).substr(start + kHeaderBytes, body));
  std::string tmp;
  put_u32(tmp, crc);
  out.replace(start + 4, 4, tmp);
}

void encode_record(std::string& out, JournalRecordType type, std::uint64_t seq,
                   std::string_view key, std::string_view value) {
  encode_raw(out, static_cast<unsigned char>(type), seq, key, value);
}

void encode_checkpoint(std::string& out, std::uint64_t seq, std::uint64_t mark) {
  std::string v;
  put_u64(v, mark);
  encode_raw(out, kCheckpointType, seq, {}, v);
}

absl::Status errno_status(std::string_view what, const std::string& path, int err) {
  return absl::DataLossError(absl::StrCat("journal: ", av(what), " ", av(path), ": ",
                                          av(std::string_view(errno_text(err)))));
}

absl::Status write_all(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_status("write", path, errno);
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return absl::OkStatus();
}

absl::Status fsync_dir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errno_status("open directory", dir, errno);
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) return errno_status("fsync directory", dir, err);
  return absl::OkStatus();
}

absl::StatusOr<std::string> read_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno_status("open", path, errno);
  std::string out;
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      return errno_status("read", path, err);
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return out;
}

}  // namespace journal_internal

std::vector<std::string> Journal::segment_files(const std::string& path) {
  std::vector<std::pair<std::uint64_t, std::string>> found;
  const std::filesystem::path p(path);
  std::filesystem::path dir = p.parent_path();
  if (dir.empty()) dir = ".";
  const std::string prefix = p.filename().string() + ".";
  std::error_code ec;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.size() != prefix.size() + journal_internal::kSegmentDigits ||
        name.compare(0, prefix.size(), prefix) != 0) {
      continue;
    }
    std::uint64_t n = 0;
    const char* first = name.data() + prefix.size();
    const char* last = name.data() + name.size();
    auto [ptr, err] = std::from_chars(first, last, n);
    if (err != std::errc() || ptr != last) continue;
    found.emplace_back(n, (dir / name).string());
  }
  std::sort(found.begin(), found.end());
  std::vector<std::string> out;
  out.reserve(found.size());
  for (auto& f : found) out.push_back(std::move(f.second));
  return out;
}

absl::StatusOr<std::unique_ptr<Journal>> Journal::open(std::string path, JournalOptions options,
                                                       const ReplayFn& on_record) {
  if (path.empty()) return absl::InvalidArgumentError("journal: path is empty");
  if (options.segment_bytes == 0) {
    return absl::InvalidArgumentError("journal: segment_bytes must be > 0");
  }
  if (options.segment_age.count() < 0) {
    return absl::InvalidArgumentError("journal: segment_age must be >= 0");
  }
  if (options.fsync == FsyncPolicy::kEveryInterval && options.fsync_interval.count() <= 0) {
    return absl::InvalidArgumentError("journal: fsync = kEveryInterval needs fsync_interval > 0");
  }
  std::unique_ptr<Journal> j(new Journal(std::move(path), std::move(options)));
  absl::Status s = j->lock_path();
  if (!s.ok()) return s;
  s = j->replay(on_record);
  if (!s.ok()) return s;
  std::uint64_t mark = 0, seq = 0;
  {
    MutexLock l(&j->mu_);  // not shared yet; taken for the annotations
    mark = j->written_mark_;
    seq = j->enqueued_seq_;
  }
  s = j->start_segment(mark, seq);
  if (!s.ok()) return s;
  j->release_below(mark);  // segments holding only acknowledged records
  if (j->options_.fsync == FsyncPolicy::kEveryInterval) {
    j->syncer_ = std::thread([raw = j.get()] { raw->sync_loop(); });
  }
  return j;
}

Journal::~Journal() {
  {
    MutexLock l(&mu_);
    stop_ = true;
    cv_.notify_all();
  }
  if (syncer_.joinable()) syncer_.join();
  (void)wait_durable(last_enqueued());
  (void)write_buffered();  // a checkpoint enqueued after the last record
  MutexLock l(&mu_);
  if (fd_ >= 0) {
    if (options_.fsync != FsyncPolicy::kNever && broken_.ok()) (void)timed_fdatasync(fd_);
    ::close(fd_);
    fd_ = -1;
  }
  if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the flock, last
}

std::uint64_t Journal::enqueue(JournalRecordType type, std::string_view key,
                               std::string_view value) {
  MutexLock l(&mu_);
  const std::uint64_t seq = ++enqueued_seq_;
  journal_internal::encode_record(buf_, type, seq, key, value);
  ++buf_records_;
  ++enqueued_entries_;
  ++stats_.appends;
  return seq;
}

bool Journal::enqueue_checkpoint(std::uint64_t mark) {
  MutexLock l(&mu_);
  mark = std::min(mark, enqueued_seq_ + 1);
  if (mark <= enqueued_mark_) return false;
  journal_internal::encode_checkpoint(buf_, enqueued_seq_, mark);
  enqueued_mark_ = buf_mark_ = mark;
  ++enqueued_entries_;
  ++stats_.checkpoints;
  return true;
}

std::uint64_t Journal::checkpoint_mark() const {
  MutexLock l(&mu_);
  return enqueued_mark_;
}

absl::Status Journal::write_buffered() {
  MutexLock l(&mu_);
  const std::uint64_t target = enqueued_entries_;
  for (;;) {
    if (written_entries_ >= target) return absl::OkStatus();
    if (!broken_.ok()) return journal_internal::unshared(broken_);
    if (!io_busy_) {
      lead(l, /*want_sync=*/false);
      continue;
    }
    cv_.wait(l, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return !io_busy_ || written_entries_ >= target || !broken_.ok();
    });
  }
}

absl::Status Journal::wait_durable(std::uint64_t seq) {
  MutexLock l(&mu_);
  seq = std::min(seq, enqueued_seq_);  // nothing beyond what was handed out
  for (;;) {
    if (durable_seq_ >= seq) return absl::OkStatus();
    if (!broken_.ok()) return journal_internal::unshared(broken_);
    if (!io_busy_) {
      lead(l, /*want_sync=*/true);
      continue;
    }
    cv_.wait(l, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return !io_busy_ || durable_seq_ >= seq || !broken_.ok();
    });
  }
}

absl::StatusOr<std::uint64_t> Journal::append(JournalRecordType type, std::string_view key,
                                              std::string_view value) {
  if (!journal_internal::record_fits(key.size(), value.size())) {
    return absl::InvalidArgumentError("journal: record larger than 1 GiB");
  }
  const std::uint64_t seq = enqueue(type, key, value);
  absl::Status s = wait_durable(seq);
  if (!s.ok()) return s;
  return seq;
}

absl::Status Journal::health() const {
  MutexLock l(&mu_);
  return journal_internal::unshared(broken_);
}

std::uint64_t Journal::last_enqueued() const {
  MutexLock l(&mu_);
  return enqueued_seq_;
}

std::size_t Journal::sealed_segments() const {
  MutexLock l(&mu_);
  return sealed_.size();
}

std::uint64_t Journal::relog_below() const {
  MutexLock l(&mu_);
  if (sealed_.size() < 2) return 0;
  std::uint64_t m = 0;
  for (std::size_t i = 0; i + 1 < sealed_.size(); ++i) m = std::max(m, sealed_[i].max_seq);
  return m + 1;
}

std::uint64_t Journal::relog_span_records() const {
  MutexLock l(&mu_);
  if (sealed_.size() < 2) return 0;
  std::uint64_t n = 0;
  for (std::size_t i = 0; i + 1 < sealed_.size(); ++i) n += sealed_[i].data_records;
  return n;
}

void Journal::release_below(std::uint64_t seq) {
  std::vector<std::string> doomed;
  {
    MutexLock l(&mu_);
    while (!sealed_.empty() && sealed_.front().max_seq < seq) {
      doomed.push_back(sealed_.front().path);
      stats_.live_bytes -= sealed_.front().bytes;
      sealed_.pop_front();
      ++stats_.deleted_segments;
    }
  }
  for (const std::string& p : doomed) ::unlink(p.c_str());
}

absl::Status Journal::retire() {
  absl::Status s = wait_durable(last_enqueued());
  MutexLock l(&mu_);
  cv_.wait(l, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !io_busy_; });
  for (const Segment& seg : sealed_) ::unlink(seg.path.c_str());
  sealed_.clear();
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  ::unlink(active_.path.c_str());
  stats_.live_bytes = 0;
  if (broken_.ok()) broken_ = absl::FailedPreconditionError("journal: retired");
  return s;
}

JournalStats Journal::stats() const {
  MutexLock l(&mu_);
  JournalStats s = stats_;
  s.segments = sealed_.size() + (fd_ >= 0 ? 1 : 0);
  return s;
}

int Journal::timed_fdatasync(int fd) const {
  if (options_.fsync_latency == nullptr) return ::fdatasync(fd);
  const auto t0 = std::chrono::steady_clock::now();
  const int rc = ::fdatasync(fd);
  const int err = errno;
  options_.fsync_latency->record_since(t0);
  errno = err;
  return rc;
}

Journal::Journal(std::string path, JournalOptions options)
    : path_(std::move(path)),
      options_(std::move(options)),
      clock_(clock_or_default(options_.clock)) {
  std::filesystem::path p(path_);
  dir_ = p.parent_path().empty() ? std::string(".") : p.parent_path().string();
}

std::string Journal::segment_path(std::uint64_t number) const {
  char digits[32];
  std::snprintf(digits, sizeof(digits), "%0*llu", journal_internal::kSegmentDigits,
                static_cast<unsigned long long>(number));
  return absl::StrCat(path_, ".", digits);
}

absl::Status Journal::lock_path() {
  const std::string p = absl::StrCat(path_, ".lock");
  lock_fd_ = ::open(p.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd_ < 0) {
    return absl::DataLossError(absl::StrCat("journal: cannot open ", p, ": ", errno_text(errno)));
  }
  if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    const int e = errno;
    if (e == EWOULDBLOCK) {
      return absl::FailedPreconditionError(absl::StrCat(
          "journal: ", path_, " is in use by another journal (", p,
          " is locked: another process, or another cache in this one, uses this path)"));
    }
    return absl::DataLossError(absl::StrCat("journal: cannot lock ", p, ": ", errno_text(e)));
  }
  return absl::OkStatus();
}

absl::Status Journal::replay(const ReplayFn& on_record) {
  using namespace journal_internal;
  struct Scanned {
    std::string file;
    std::uint64_t start_seq = 0;     // last_seq before this segment
    std::size_t begin = 0;           // offset of its first record (after the magic)
    std::size_t valid = 0;           // bytes of valid records after `begin`
    std::uint64_t max_data_seq = 0;  // 0: no data records
    std::uint64_t data_records = 0;
  };
  std::vector<Scanned> scanned;
  std::uint64_t last_seq = 0;
  std::uint64_t last_number = 0;
  std::uint64_t mark = 0;
  // Pass 1: validate every segment, find the largest checkpoint mark.
  for (const std::string& file : segment_files(path_)) {
    const std::string name = std::filesystem::path(file).filename().string();
    std::uint64_t number = 0;
    std::from_chars(name.data() + name.size() - kSegmentDigits, name.data() + name.size(), number);
    last_number = std::max(last_number, number);
    absl::StatusOr<std::string> data = read_file(file);
    if (!data.ok()) return data.status();
    ++replay_stats_.segments;
    Segment seg{number, file, 0, data->size(), 0, {}};
    Scanned sc{file, last_seq, 0, 0, 0, 0};
    std::string_view rest(*data);
    if (rest.size() < kMagic.size()) {
      if (!rest.empty()) ++replay_stats_.torn;  // crashed while writing the magic
      replay_stats_.skipped_bytes += rest.size();
      rest = {};
    } else if (rest.substr(0, kMagic.size()) != kMagic) {
      ++replay_stats_.corrupt;
      replay_stats_.skipped_bytes += rest.size();
      rest = {};
    } else {
      rest.remove_prefix(kMagic.size());
      sc.begin = kMagic.size();
    }
    const ScanEnd end = scan_segment(rest, last_seq, &sc.valid, [&](const ParsedRecord& r) {
      seg.max_seq = r.seq;
      if (r.type == kCheckpointType) {
        mark = std::max(mark, get_u64(r.value.data()));
      } else {
        sc.max_data_seq = r.seq;
        ++seg.data_records;
      }
    });
    if (end == ScanEnd::kTorn) ++replay_stats_.torn;
    if (end == ScanEnd::kCorrupt) ++replay_stats_.corrupt;
    replay_stats_.skipped_bytes += rest.size() - sc.valid;
    sc.data_records = seg.data_records;
    if (seg.data_records > 0) scanned.push_back(sc);
    MutexLock l(&mu_);  // not shared yet; taken for the annotations
    stats_.live_bytes += seg.bytes;
    sealed_.push_back(std::move(seg));
  }
  // Pass 2: hand over the data records the mark does not cover.
  for (const Scanned& sc : scanned) {
    if (sc.max_data_seq < mark) {  // every record in it is covered: no need to read it again
      replay_stats_.acknowledged += sc.data_records;
      continue;
    }
    absl::StatusOr<std::string> data = read_file(sc.file);
    if (!data.ok()) return data.status();
    if (data->size() < sc.begin + sc.valid) {
      return absl::DataLossError(absl::StrCat("journal: ", sc.file, " shrank during replay"));
    }
    std::uint64_t seq = sc.start_seq;
    std::size_t valid = 0;
    (void)scan_segment(std::string_view(*data).substr(sc.begin, sc.valid), seq, &valid,
                       [&](const ParsedRecord& r) {
                         if (r.type == kCheckpointType) return;
                         if (r.seq < mark) {
                           ++replay_stats_.acknowledged;
                           return;
                         }
                         JournalRecord rec;
                         rec.type = static_cast<JournalRecordType>(r.type);
                         rec.seq = r.seq;
                         rec.key.assign(r.key);
                         rec.value.assign(r.value);
                         ++replay_stats_.records;
                         on_record(std::move(rec));
                       });
  }
  replay_stats_.checkpoint = mark;
  {
    MutexLock l(&mu_);
    enqueued_seq_ = written_seq_ = synced_seq_ = durable_seq_ = last_seq;
    enqueued_mark_ = written_mark_ = mark;
  }
  if (last_number >= kMaxSegmentNumber) {
    return absl::FailedPreconditionError(absl::StrCat(
        "journal: ", path_, " has used every 12-digit segment number; move its files away"));
  }
  next_number_ = last_number + 1;
  return absl::OkStatus();
}

absl::Status Journal::start_segment(std::uint64_t mark, std::uint64_t seq) {
  if (next_number_ > journal_internal::kMaxSegmentNumber) {
    return absl::FailedPreconditionError("journal: segment numbers exhausted");
  }
  const std::uint64_t number = next_number_++;
  const std::string p = segment_path(number);
  const int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return journal_internal::errno_status("create", p, errno);
  std::string head(journal_internal::kMagic);
  if (mark > 0) journal_internal::encode_checkpoint(head, seq, mark);
  absl::Status s = journal_internal::write_all(fd, head, p);
  if (s.ok() && options_.fsync != FsyncPolicy::kNever) {
    if (timed_fdatasync(fd) != 0) s = journal_internal::errno_status("fdatasync", p, errno);
    if (s.ok()) s = journal_internal::fsync_dir(dir_);
  }
  if (!s.ok()) {
    ::close(fd);
    return s;
  }
  MutexLock l(&mu_);
  if (fd_ >= 0) {
    ::close(fd_);
    sealed_.push_back(active_);
  }
  fd_ = fd;
  active_ = Segment{number, p, mark > 0 ? seq : 0, head.size(), 0, {}};
  stats_.live_bytes += active_.bytes;
  return absl::OkStatus();
}

void Journal::lead(MutexLock& l, bool want_sync) {
  io_busy_ = true;
  std::string batch;
  batch.swap(buf_);
  const std::uint64_t upto = enqueued_seq_;
  const std::uint64_t upto_entries = enqueued_entries_;
  const std::uint64_t batch_mark = buf_mark_;
  const std::uint64_t batch_records = buf_records_;
  buf_records_ = 0;
  const int fd = fd_;
  const bool every = options_.fsync == FsyncPolicy::kEveryWrite;
  const TimePoint now = clock_->now();
  const bool aged =
      options_.segment_age.count() > 0 &&
      (active_.data_records > 0 ? now - active_.first_data >= options_.segment_age : false);
  const bool rotate = active_.bytes + batch.size() >= options_.segment_bytes || aged;
  const bool sync = (every && want_sync) || (rotate && options_.fsync != FsyncPolicy::kNever);
  absl::Status s;
  l.unlocked([&] {
    s = journal_internal::write_all(fd, batch, active_.path);
    if (s.ok() && sync) {
      if (timed_fdatasync(fd) != 0)
        s = journal_internal::errno_status("fdatasync", active_.path, errno);
    }
  });
  ++stats_.commits;
  stats_.bytes += batch.size();
  if (sync) ++stats_.syncs;
  active_.bytes += batch.size();
  stats_.live_bytes += batch.size();
  if (upto > 0 && !batch.empty()) active_.max_seq = std::max(active_.max_seq, upto);
  if (batch_records > 0 && active_.data_records == 0) active_.first_data = now;
  active_.data_records += batch_records;
  if (s.ok()) {
    written_seq_ = upto;
    written_entries_ = upto_entries;
    written_mark_ = std::max(written_mark_, batch_mark);
    if (sync) synced_seq_ = upto;
    if (rotate) {
      const std::uint64_t mark = written_mark_;
      l.unlocked([&] { s = start_segment(mark, upto); });  // takes mu_ itself
    }
  }
  if (s.ok()) {
    if (sync || !every) durable_seq_ = upto;
  } else if (broken_.ok()) {
    broken_ = s;
  }
  io_busy_ = false;
  cv_.notify_all();
}

void Journal::sync_loop() {
  MutexLock l(&mu_);
  while (!stop_) {
    cv_.wait_for(l, options_.fsync_interval,
                 [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stop_; });
    if (stop_) break;
    cv_.wait(l, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !io_busy_; });
    if (written_seq_ <= synced_seq_ || !broken_.ok() || fd_ < 0) continue;
    io_busy_ = true;
    const int fd = fd_;
    const std::uint64_t upto = written_seq_;
    int rc = 0, err = 0;
    l.unlocked([&] {
      rc = timed_fdatasync(fd);
      err = errno;
    });
    io_busy_ = false;
    ++stats_.syncs;
    if (rc == 0) {
      synced_seq_ = std::max(synced_seq_, upto);
    } else if (broken_.ok()) {
      broken_ = journal_internal::errno_status("fdatasync", path_, err);
    }
    cv_.notify_all();
  }
}
}  // namespace larder::internal
