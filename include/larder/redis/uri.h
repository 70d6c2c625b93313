// SPDX-License-Identifier: Apache-2.0
//
// parse_redis_uri: RedisOptions from a connection URI, so a deployment can
// name its Redis in one configuration string.
//
//   redis://[[user]:password@]host[:port][/db]          standalone (port 6379)
//   unix://[[user]:password@]/path/to.sock[?db=N]       standalone, unix socket
//   redis-cluster://[user:password@]h1:p1,h2:p2[,...]   Redis Cluster seeds (port 6379)
//   redis-sentinel://[user:password@]s1:p1,s2:p2/master[/db]
//                                                       Sentinel (port 26379)
//
// Schemes are case-insensitive. An IPv6 host goes in brackets
// (`redis://[::1]:6380`). User and password are percent-decoded, so a
// password holding `@`, `:` or `/` is written `%40`, `%3A`, `%2F`. `?db=N` is
// accepted by every scheme (the only query parameter); a db given twice must
// agree. Only the location and the credentials are set: key_prefix, timeouts
// and the rest keep RedisOptions' defaults (or the `defaults` passed in).
//
// Errors: kInvalidArgument naming the bad part ("port of host 2 is not in
// 1..65535", "rediss:// (TLS) is not supported: hiredis 0.14 has no TLS",
// "user without a password", "unknown query parameter \"x\"", "db on a
// cluster must be 0", "no master name"). No message ever shows the password:
// the URI is quoted through redact_redis_uri().
//
// Example:
//
//   absl::StatusOr<larder::RedisOptions> o = larder::parse_redis_uri(
//       "redis-cluster://app:s3cret@10.0.0.1:7000,10.0.0.2:7000");
//   if (!o.ok()) return o.status();
//   o->key_prefix = "svc:";
//   auto client = std::make_shared<larder::RedisClient>(*std::move(o));
#ifndef LARDER_REDIS_URI_H_
#define LARDER_REDIS_URI_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "larder/redis/client.h"

namespace larder {

// parse_redis_uri: the options `uri` describes, on top of `defaults`
// (host, port, unix_socket, username, password, db, cluster_nodes, sentinels
// and sentinel_master are replaced; every other field is kept). Errors:
// kInvalidArgument (see the header comment). Pure: no I/O.
absl::StatusOr<RedisOptions> parse_redis_uri(std::string_view uri, RedisOptions defaults = {});

// redact_redis_uri: `uri` with its password (if any) replaced by "***", for
// messages and logs. Works on malformed URIs too (whatever sits between the
// scheme's "//" and the last '@' before the path counts as credentials).
std::string redact_redis_uri(std::string_view uri);

}  // namespace larder

#endif  // LARDER_REDIS_URI_H_
