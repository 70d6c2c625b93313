// SPDX-License-Identifier: Apache-2.0
#include "pg_pool.h"

#include <stdexcept>
#include <utility>

namespace catalog {

absl::Status to_status(std::string_view label, const std::exception& e) {
  std::string msg = std::string("postgres: ") + std::string(label) + ": " + e.what();
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
  if (dynamic_cast<const pqxx::in_doubt_error*>(&e) != nullptr) return absl::UnknownError(msg);
  if (dynamic_cast<const pqxx::broken_connection*>(&e) != nullptr) {
    return absl::UnavailableError(msg);
  }
  if (const auto* sql = dynamic_cast<const pqxx::sql_error*>(&e)) {
    const std::string state = sql->sqlstate();
    const std::string cls = state.substr(0, 2);
    if (cls == "40") return absl::AbortedError(msg);
    if (cls == "57" || cls == "08" || cls == "53") return absl::UnavailableError(msg);
    if (cls == "23") return absl::FailedPreconditionError(msg);
  }
  return absl::InternalError(msg);
}

PgPool::PgPool(PgPoolOptions options) : opt_(std::move(options)) {
  if (opt_.size == 0) throw std::invalid_argument("PgPoolOptions::size must be > 0");
}

PgPool::~PgPool() = default;

absl::StatusOr<std::unique_ptr<pqxx::connection>> PgPool::acquire() {
  {
    std::unique_lock<std::mutex> lock(mu_);
    const bool got = cv_.wait_for(lock, opt_.acquire_timeout,
                                  [&] { return !idle_.empty() || open_ < opt_.size; });
    if (!got) {
      return absl::ResourceExhaustedError("all " + std::to_string(opt_.size) +
                                          " connections in use for acquire_timeout");
    }
    if (!idle_.empty()) {
      std::unique_ptr<pqxx::connection> c = std::move(idle_.back());
      idle_.pop_back();
      return c;
    }
    ++open_;  // reserve the slot; connect outside the lock
  }
  try {
    auto c = std::make_unique<pqxx::connection>(opt_.conninfo);
    if (opt_.on_connect) opt_.on_connect(*c);
    return c;
  } catch (const std::exception& e) {
    release(nullptr);
    absl::Status s = to_status("connect", e);
    // A server that cannot be reached at all is unavailable, whatever libpq said.
    if (s.code() == absl::StatusCode::kInternal) return absl::UnavailableError(s.message());
    return s;
  }
}

void PgPool::release(std::unique_ptr<pqxx::connection> c) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (c != nullptr && c->is_open()) {
      idle_.push_back(std::move(c));
    } else {
      --open_;
    }
  }
  cv_.notify_one();
}

void PgPool::count(std::string_view label) {
  if (on_query) on_query(label);
  std::lock_guard<std::mutex> lock(mu_);
  auto it = counts_.find(label);
  if (it == counts_.end()) it = counts_.emplace(std::string(label), 0).first;
  ++it->second;
}

std::uint64_t PgPool::queries(std::string_view label) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::uint64_t n = 0;
  for (const auto& [l, c] : counts_) {
    if (label.empty() || l == label) n += c;
  }
  return n;
}

void PgPool::reset_counts() {
  std::lock_guard<std::mutex> lock(mu_);
  counts_.clear();
}

std::size_t PgPool::open_connections() const {
  std::lock_guard<std::mutex> lock(mu_);
  return open_;
}

}  // namespace catalog
