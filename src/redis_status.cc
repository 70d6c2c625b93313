// SPDX-License-Identifier: Apache-2.0
#include "larder/internal/redis_status.h"

#include <hiredis/hiredis.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "larder/internal/absl_compat.h"
#include "larder/internal/errno_text.h"

namespace larder::internal {

absl::Status status_from_redis(const redisContext* ctx, const redisReply* reply,
                               std::string_view what) {
  if (reply == nullptr) {
    if (ctx == nullptr) {
      return absl::UnavailableError(absl::StrCat("redis ", av(what), ": no connection"));
    }
    const absl::string_view err = ctx->errstr;
    if (ctx->err == REDIS_ERR_OOM) {
      return absl::ResourceExhaustedError(absl::StrCat("redis ", av(what), ": out of memory"));
    }
    const bool timed_out = absl::StrContains(err, "Resource temporarily unavailable") ||
                           absl::StrContains(err, "timed out") || absl::StrContains(err, "Timeout");
    if (timed_out) {
      return absl::DeadlineExceededError(
          absl::StrCat("redis ", av(what), ": timed out (", err, ")"));
    }
    return absl::UnavailableError(absl::StrCat(
        "redis ", av(what), ": ", err.empty() ? absl::string_view("connection error") : err));
  }
  if (reply->type != REDIS_REPLY_ERROR) return absl::OkStatus();
  const absl::string_view text(reply->str, reply->len);
  const std::string msg = absl::StrCat("redis ", av(what), ": ", text);
  if (absl::StartsWith(text, "NOAUTH") || absl::StartsWith(text, "WRONGPASS") ||
      absl::StartsWith(text, "NOPERM")) {
    return absl::PermissionDeniedError(msg);
  }
  if (absl::StartsWith(text, "LOADING") || absl::StartsWith(text, "BUSY") ||
      absl::StartsWith(text, "MASTERDOWN") || absl::StartsWith(text, "TRYAGAIN") ||
      absl::StartsWith(text, "CLUSTERDOWN") || absl::StartsWith(text, "READONLY") ||
      absl::StartsWith(text, "MOVED ") || absl::StartsWith(text, "ASK ")) {
    return absl::UnavailableError(msg);
  }
  return absl::InternalError(msg);
}

absl::Status redis_io_status(std::string_view what, int err) {
  const std::string msg = absl::StrCat("redis ", av(what), ": ", internal::errno_text(err));
  return err == ETIMEDOUT ? absl::DeadlineExceededError(msg) : absl::UnavailableError(msg);
}

absl::Status redis_timeout_status(std::string_view what, std::chrono::milliseconds timeout) {
  return absl::DeadlineExceededError(
      absl::StrCat("redis ", av(what), ": no reply within ", timeout.count(), " ms"));
}

}  // namespace larder::internal
