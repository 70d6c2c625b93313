// SPDX-License-Identifier: Apache-2.0
//
// Fuzz target: parse_redis_uri and redact_redis_uri (larder/redis/uri.h).
// URIs come from configuration and environment variables, often pasted.
//
// Properties: errors are kInvalidArgument; parsed options are usable (port
// in 1..65535, db >= 0, a host or socket or node list); the password never
// shows in an error message (unless it also shows in the redacted URI, i.e.
// it is not where a password goes); redaction is idempotent, and what it
// shows does not depend on the password.
#include <cctype>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "larder/redis/uri.h"

namespace {

// The password by the parser's documented rule: after "//" (unless a path
// follows at once), everything before the LAST '@' in what precedes the first
// '?' is userinfo; the password follows its first ':'.
std::string_view naive_password(std::string_view uri) {
  const std::size_t sep = uri.find("://");
  if (sep == std::string_view::npos) return {};
  std::string_view rest = uri.substr(sep + 3);
  if (rest.empty() || rest.front() == '/') return {};
  const std::size_t q = rest.find('?');
  if (q != std::string_view::npos) rest = rest.substr(0, q);
  const std::size_t at = rest.rfind('@');
  if (at == std::string_view::npos) return {};
  const std::string_view userinfo = rest.substr(0, at);
  const std::size_t colon = userinfo.find(':');
  return colon == std::string_view::npos ? std::string_view{} : userinfo.substr(colon + 1);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view uri(reinterpret_cast<const char*>(data), size);
  const std::string redacted = larder::redact_redis_uri(uri);
  FUZZ_CHECK(larder::redact_redis_uri(redacted) == redacted);
  const std::string_view naive = naive_password(uri);
  // The redacted URI does not depend on the password: the same URI with
  // another password of the same length redacts to the same text. (Checking
  // "the password's text is not in the output" is weaker and wrong: a
  // password such as "/user:***@host" is spelled by the redacted URI's own
  // "//", user name, "***" and host; a fuzz run found one.)
  if (!naive.empty()) {
    std::string other(uri);
    other.replace(static_cast<std::size_t>(naive.data() - uri.data()), naive.size(),
                  std::string(naive.size(), '#'));
    FUZZ_CHECK(larder::redact_redis_uri(other) == redacted);
  }

  absl::StatusOr<larder::RedisOptions> o = larder::parse_redis_uri(uri);
  if (!o.ok()) {
    FUZZ_CHECK(o.status().code() == absl::StatusCode::kInvalidArgument);
    const std::string msg(o.status().message());
    // Alphanumeric passwords only: a password made of the message's own text
    // ("***", quotes, "malformed") is found in any message that quotes it.
    bool alnum = naive.size() >= 4;
    for (char ch : naive) alnum = alnum && std::isalnum(static_cast<unsigned char>(ch)) != 0;
    if (alnum && redacted.find(naive) == std::string::npos &&
        msg.find(naive) != std::string::npos) {
      // Shown: fine only if it is the message's own text (e.g. a password
      // "redis-sent" inside the list of schemes), which shows just the same
      // when the password is something else of the same length.
      std::string other(uri);
      other.replace(static_cast<std::size_t>(naive.data() - uri.data()), naive.size(),
                    std::string(naive.size(), '#'));
      absl::StatusOr<larder::RedisOptions> o2 = larder::parse_redis_uri(other);
      FUZZ_CHECK(!o2.ok() && std::string(o2.status().message()).find(naive) != std::string::npos);
    }
    return 0;
  }
  FUZZ_CHECK(o->db >= 0);
  if (o->unix_socket.empty() && o->cluster_nodes.empty() && o->sentinels.empty()) {
    FUZZ_CHECK(o->port >= 1 && o->port <= 65535);
    FUZZ_CHECK(!o->host.empty());
  }
  if (!o->sentinels.empty()) FUZZ_CHECK(!o->sentinel_master.empty());
  return 0;
}
