// SPDX-License-Identifier: Apache-2.0
//
// parse_redis_uri / redact_redis_uri / RedisClient(uri): every scheme,
// minimal and full, IPv6, escapes, and each rejection, with the password
// never appearing in any message. No server needed (nothing connects).
#include <stdexcept>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "larder/redis.h"

namespace larder {
namespace {

using Strings = std::vector<std::string>;

RedisOptions ok(std::string_view uri) {
  absl::StatusOr<RedisOptions> o = parse_redis_uri(uri);
  EXPECT_TRUE(o.ok()) << uri << ": " << o.status();
  return o.ok() ? *o : RedisOptions{};
}

TEST(RedisUriTest, RedisMinimal) {
  RedisOptions o = ok("redis://cache");
  EXPECT_EQ(o.host, "cache");
  EXPECT_EQ(o.port, 6379);
  EXPECT_EQ(o.db, 0);
  EXPECT_TRUE(o.password.empty());
  EXPECT_TRUE(o.cluster_nodes.empty());
  EXPECT_TRUE(o.sentinels.empty());
}

TEST(RedisUriTest, RedisFull) {
  RedisOptions o = ok("redis://alice:pw@cache.internal:6380/2");
  EXPECT_EQ(o.host, "cache.internal");
  EXPECT_EQ(o.port, 6380);
  EXPECT_EQ(o.db, 2);
  EXPECT_EQ(o.username, "alice");
  EXPECT_EQ(o.password, "pw");
}

TEST(RedisUriTest, PasswordOnlyAndEmptyPassword) {
  RedisOptions o = ok("redis://:pw@h:1");
  EXPECT_EQ(o.username, "");
  EXPECT_EQ(o.password, "pw");
  EXPECT_EQ(o.port, 1);
  RedisOptions e = ok("redis://:@h");  // empty password: no AUTH
  EXPECT_EQ(e.password, "");
  EXPECT_EQ(e.username, "");
}

TEST(RedisUriTest, SchemeIsCaseInsensitive) {
  EXPECT_EQ(ok("REDIS://h:7/3").db, 3);
  EXPECT_EQ(ok("Redis-Cluster://a:1").cluster_nodes, Strings{"a:1"});
}

TEST(RedisUriTest, TrailingSlashAndQueryDb) {
  EXPECT_EQ(ok("redis://h/").db, 0);
  EXPECT_EQ(ok("redis://h?db=4").db, 4);
  EXPECT_EQ(ok("redis://h/4?db=4").db, 4);
}

TEST(RedisUriTest, Ipv6InBrackets) {
  RedisOptions o = ok("redis://[::1]:6380/1");
  EXPECT_EQ(o.host, "::1");
  EXPECT_EQ(o.port, 6380);
  EXPECT_EQ(ok("redis://[fe80::1]").port, 6379);
  EXPECT_EQ(ok("redis-cluster://[::1]:7000,10.0.0.1:7001").cluster_nodes,
            (Strings{"[::1]:7000", "10.0.0.1:7001"}));
}

TEST(RedisUriTest, EscapedCredentials) {
  RedisOptions o = ok("redis://us%40er:p%40ss%3Aw%2Fd@h");
  EXPECT_EQ(o.username, "us@er");
  EXPECT_EQ(o.password, "p@ss:w/d");
  // An unescaped '@' in the password: credentials end at the last '@'.
  RedisOptions raw = ok("redis://:a@b@h:9");
  EXPECT_EQ(raw.password, "a@b");
  EXPECT_EQ(raw.host, "h");
  EXPECT_EQ(raw.port, 9);
}

TEST(RedisUriTest, UnixMinimalAndFull) {
  RedisOptions o = ok("unix:///var/run/redis.sock");
  EXPECT_EQ(o.unix_socket, "/var/run/redis.sock");
  EXPECT_EQ(o.db, 0);
  RedisOptions f = ok("unix://bob:pw@/tmp/r.sock?db=3");
  EXPECT_EQ(f.unix_socket, "/tmp/r.sock");
  EXPECT_EQ(f.username, "bob");
  EXPECT_EQ(f.password, "pw");
  EXPECT_EQ(f.db, 3);
  EXPECT_EQ(ok("unix://:pw@/tmp/r.sock").password, "pw");
}

TEST(RedisUriTest, ClusterMinimalAndFull) {
  EXPECT_EQ(ok("redis-cluster://n1").cluster_nodes, Strings{"n1:6379"});
  RedisOptions o = ok("redis-cluster://app:s3cret@10.0.0.1:7000,10.0.0.2:7001,n3");
  EXPECT_EQ(o.cluster_nodes, (Strings{"10.0.0.1:7000", "10.0.0.2:7001", "n3:6379"}));
  EXPECT_EQ(o.username, "app");
  EXPECT_EQ(o.password, "s3cret");
  EXPECT_EQ(ok("redis-cluster://a:1/0").db, 0);
}

TEST(RedisUriTest, SentinelMinimalAndFull) {
  RedisOptions o = ok("redis-sentinel://s1/mymaster");
  EXPECT_EQ(o.sentinels, Strings{"s1:26379"});
  EXPECT_EQ(o.sentinel_master, "mymaster");
  EXPECT_EQ(o.db, 0);
  RedisOptions f = ok("redis-sentinel://:pw@s1:5000,s2:5001,[::1]:5002/my%2Fmaster/7");
  EXPECT_EQ(f.sentinels, (Strings{"s1:5000", "s2:5001", "[::1]:5002"}));
  EXPECT_EQ(f.sentinel_master, "my/master");
  EXPECT_EQ(f.db, 7);
  EXPECT_EQ(f.password, "pw");
}

TEST(RedisUriTest, KeepsOtherFieldsOfDefaults) {
  RedisOptions d;
  d.key_prefix = "svc:";
  d.pool_size = 9;
  d.db = 5;
  absl::StatusOr<RedisOptions> o = parse_redis_uri("redis://h", d);
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->key_prefix, "svc:");
  EXPECT_EQ(o->pool_size, 9u);
  EXPECT_EQ(o->db, 0);  // location fields come from the URI only
}

// ---- rejections ----

struct Bad {
  const char* uri;
  const char* expect;  // a fragment the message must contain
};

TEST(RedisUriTest, RejectsEachMalformedPartByName) {
  const Bad cases[] = {
      {"", "no scheme"},
      {"cache:6379", "no scheme"},
      {"http://h", "unknown scheme"},
      {"rediss://h", "TLS"},
      {"rediss-cluster://h", "TLS"},
      {"redis://", "no host"},
      {"redis:///3", "no host"},
      {"redis://h:", "port of host is not a number"},
      {"redis://h:abc", "port of host is not a number"},
      {"redis://h:0", "port of host is not in 1..65535"},
      {"redis://h:65536", "port of host is not in 1..65535"},
      {"redis://h:-1", "port of host is not a number"},
      {"redis://h/x", "db (the path)"},
      {"redis://h/-1", "db (the path)"},
      {"redis://h/1?db=2", "disagree"},
      {"redis://h?db=", "db in the query"},
      {"redis://h?timeout=5", "unknown query parameter \"timeout\""},
      {"redis://h?db=1&db=1", "db given twice"},
      {"redis://a,b", "one host"},
      {"redis://::1", "brackets"},
      {"redis://[::1", "'[' without ']'"},
      {"redis://[::1]x", "after ']'"},
      {"redis://alice@h", "user without a password"},
      {"redis://alice:@h", "user without a password"},
      {"redis://:p%zz@h", "%-escape in the password"},
      {"redis://:p%4@h", "%-escape in the password"},
      {"unix://", "absolute socket path"},
      {"unix://tmp/r.sock", "absolute socket path"},
      {"unix:///", "empty socket path"},
      {"redis-cluster://", "no hosts"},
      {"redis-cluster://a:1,,b:2", "host 2 is empty"},
      {"redis-cluster://a:1,b:99999", "port of host 2 is not in 1..65535"},
      {"redis-cluster://a:1/3", "db on a cluster must be 0"},
      {"redis-cluster://a:1?db=1", "db on a cluster must be 0"},
      {"redis-sentinel://s1:26379", "no master name"},
      {"redis-sentinel://s1:26379/", "no master name"},
      {"redis-sentinel:///m", "no hosts"},
      {"redis-sentinel://s1,s2:x/m", "port of host 2 is not a number"},
      {"redis-sentinel://s1/m/x", "db (after the master name)"},
  };
  for (const Bad& b : cases) {
    absl::StatusOr<RedisOptions> o = parse_redis_uri(b.uri);
    ASSERT_FALSE(o.ok()) << b.uri;
    EXPECT_EQ(o.status().code(), absl::StatusCode::kInvalidArgument) << b.uri;
    EXPECT_NE(o.status().message().find(b.expect), absl::string_view::npos)
        << b.uri << " -> " << o.status();
  }
}

TEST(RedisUriTest, PasswordNeverInAnyMessage) {
  const char* cases[] = {
      "redis://u:hunter2@h:0",         "redis://u:hunter2@h/x",
      "redis://:hunter2@h?x=1",        "redis-cluster://u:hunter2@a:1/5",
      "redis-sentinel://u:hunter2@s1", "unix://u:hunter2@relative.sock",
      "rediss://u:hunter2@h",          "redis://u:hunter2@",
      "redis://u:hun@ter2@h:x",        "redis://hunter2@h",
      "redis://u:hunter2%zz@h",        "redis-cluster://u:hunter2@a,,b",
  };
  for (const char* uri : cases) {
    absl::StatusOr<RedisOptions> o = parse_redis_uri(uri);
    ASSERT_FALSE(o.ok()) << uri;
    EXPECT_EQ(o.status().message().find("hunter"), absl::string_view::npos) << o.status();
    EXPECT_EQ(o.status().message().find("ter2"), absl::string_view::npos) << o.status();
    EXPECT_NE(o.status().message().find("***"), absl::string_view::npos) << o.status();
  }
}

TEST(RedisUriTest, Redact) {
  EXPECT_EQ(redact_redis_uri("redis://u:secret@h:1/2"), "redis://u:***@h:1/2");
  EXPECT_EQ(redact_redis_uri("redis://:secret@h"), "redis://:***@h");
  EXPECT_EQ(redact_redis_uri("redis://secret@h"), "redis://***@h");
  EXPECT_EQ(redact_redis_uri("redis://h:1/2"), "redis://h:1/2");
  EXPECT_EQ(redact_redis_uri("unix:///tmp/r.sock"), "unix:///tmp/r.sock");
  EXPECT_EQ(redact_redis_uri("garbage:secret@h"), "***@h");
}

// Found by fuzz_redis_uri: the password "/u:***@h" is spelled by the redacted
// URI's own "//", user name, "***" and host. Redaction shows nothing of the
// password: any other password of the same length redacts the same.
TEST(RedisUriTest, RedactionDoesNotDependOnThePassword) {
  EXPECT_EQ(redact_redis_uri("redis://u:/u:***@h@h:1"), "redis://u:***@h:1");
  EXPECT_EQ(redact_redis_uri("redis://u:########@h:1"), "redis://u:***@h:1");
  absl::StatusOr<RedisOptions> o = parse_redis_uri("redis://u:/u:***@h@h:1");
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->password, "/u:***@h");
  EXPECT_EQ(o->host, "h");
}

TEST(RedisUriTest, ClientFromUri) {
  RedisClient c("redis://127.0.0.1:6390/2");  // connects lazily: no server needed
  EXPECT_EQ(c.options().port, 6390);
  EXPECT_EQ(c.options().db, 2);
  RedisOptions d;
  d.key_prefix = "p:";
  RedisClient c2("redis://:pw@127.0.0.1", d);
  EXPECT_EQ(c2.options().key_prefix, "p:");
  EXPECT_EQ(c2.options().password, "pw");
}

TEST(RedisUriTest, ClientFromBadUriThrowsWithoutPassword) {
  try {
    RedisClient c("redis://u:hunter2@h:0");
    FAIL() << "no throw";
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()).find("hunter2"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("port"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace larder
