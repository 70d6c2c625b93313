// SPDX-License-Identifier: Apache-2.0
//
// parse_redis_uri / redact_redis_uri (include/larder/redis/uri.h).
//
// Parsing, in order: scheme (case-insensitive) up to "://"; the query (after
// the first '?'); credentials: when what follows "//" does not start with
// '/', everything up to the LAST '@' (so an unescaped '@' or '/' in a password
// still lands in the password, never in a host or a message); then the
// scheme's own grammar for hosts and path. Every message quotes the URI
// through redact_redis_uri, which uses the same credentials rule, so what a
// parse error shows can never contain the password.
#include <cctype>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "larder/internal/absl_compat.h"
#include "larder/redis/uri.h"

namespace larder {
namespace {

using internal::av;

struct Split {
  std::string_view scheme;    // lower-cased by the caller
  std::string_view userinfo;  // without '@'; empty when absent
  bool has_userinfo = false;
  std::string_view rest;   // hosts and path, without the query
  std::string_view query;  // without '?'
  bool has_query = false;
  std::size_t userinfo_pos = 0;  // offset of userinfo in the URI
};

// split: scheme, credentials, rest and query; false without "://".
bool split(std::string_view uri, Split& out) {
  const std::size_t sep = uri.find("://");
  if (sep == std::string_view::npos) return false;
  out.scheme = uri.substr(0, sep);
  std::string_view rest = uri.substr(sep + 3);
  std::size_t base = sep + 3;
  const std::size_t q = rest.find('?');
  if (q != std::string_view::npos) {
    out.query = rest.substr(q + 1);
    out.has_query = true;
    rest = rest.substr(0, q);
  }
  if (!rest.empty() && rest.front() != '/') {
    const std::size_t at = rest.rfind('@');
    if (at != std::string_view::npos) {
      out.userinfo = rest.substr(0, at);
      out.has_userinfo = true;
      out.userinfo_pos = base;
      rest = rest.substr(at + 1);
    }
  }
  out.rest = rest;
  return true;
}

std::vector<std::string_view> split_on(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  for (;;) {
    const std::size_t p = s.find(sep);
    out.push_back(s.substr(0, p));
    if (p == std::string_view::npos) return out;
    s = s.substr(p + 1);
  }
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// percent_decode: false on a malformed escape.
bool percent_decode(std::string_view in, std::string& out) {
  out.clear();
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out.push_back(in[i]);
      continue;
    }
    if (i + 2 >= in.size()) return false;
    const int hi = hex_value(in[i + 1]), lo = hex_value(in[i + 2]);
    if (hi < 0 || lo < 0) return false;
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return true;
}

class Parser {
 public:
  explicit Parser(std::string_view uri) : uri_(uri) {}

  absl::Status bad(std::string_view what) const {
    return absl::InvalidArgumentError(
        absl::StrCat("redis URI \"", redact_redis_uri(uri_), "\": ", av(what)));
  }

  // host_port: "host[:port]" or "[v6][:port]" into o's host/port.
  absl::Status host_port(std::string_view hp, int default_port, std::string_view name,
                         std::string& host, int& port) const {
    std::string_view h, p;
    bool has_port = false;
    if (!hp.empty() && hp.front() == '[') {
      const std::size_t close = hp.find(']');
      if (close == std::string_view::npos) return bad(absl::StrCat(av(name), ": '[' without ']'"));
      h = hp.substr(1, close - 1);
      std::string_view after = hp.substr(close + 1);
      if (!after.empty()) {
        if (after.front() != ':') {
          return bad(absl::StrCat(av(name), ": unexpected text after ']'"));
        }
        p = after.substr(1);
        has_port = true;
      }
    } else {
      const std::size_t colon = hp.find(':');
      if (colon != std::string_view::npos && hp.find(':', colon + 1) != std::string_view::npos) {
        return bad(absl::StrCat(av(name), ": an IPv6 address needs brackets ([::1]:6379)"));
      }
      h = hp.substr(0, colon);
      if (colon != std::string_view::npos) {
        p = hp.substr(colon + 1);
        has_port = true;
      }
    }
    if (h.empty()) return bad(absl::StrCat(av(name), ": empty host"));
    for (char c : h) {
      if (std::isspace(static_cast<unsigned char>(c)) || c == '/' || c == '@' || c == ',') {
        return bad(absl::StrCat(av(name), ": invalid character in host"));
      }
    }
    host.assign(h);
    port = default_port;
    if (has_port) {
      int v = 0;
      if (p.empty() || !absl::SimpleAtoi(av(p), &v) ||
          p.find_first_not_of("0123456789") != std::string_view::npos) {
        return bad(absl::StrCat("port of ", av(name), " is not a number"));
      }
      if (v < 1 || v > 65535) return bad(absl::StrCat("port of ", av(name), " is not in 1..65535"));
      port = v;
    }
    return absl::OkStatus();
  }

  absl::Status db_number(std::string_view s, std::string_view where, int& db) const {
    int v = 0;
    if (s.empty() || s.find_first_not_of("0123456789") != std::string_view::npos ||
        !absl::SimpleAtoi(av(s), &v)) {
      return bad(absl::StrCat(av(where), " is not a non-negative number"));
    }
    db = v;
    return absl::OkStatus();
  }

  absl::StatusOr<RedisOptions> parse(RedisOptions o) {
    Split sp;
    if (!split(uri_, sp))
      return bad("no scheme (expected redis://, unix://, redis-cluster:// or redis-sentinel://)");
    const std::string scheme = absl::AsciiStrToLower(av(sp.scheme));
    enum { kTcp, kUnix, kCluster, kSentinel } kind;
    if (scheme == "redis") {
      kind = kTcp;
    } else if (scheme == "unix") {
      kind = kUnix;
    } else if (scheme == "redis-cluster") {
      kind = kCluster;
    } else if (scheme == "redis-sentinel") {
      kind = kSentinel;
    } else if (scheme == "rediss" || scheme == "rediss-cluster" || scheme == "rediss-sentinel") {
      return bad(absl::StrCat(scheme, ":// (TLS) is not supported: hiredis 0.14 has no TLS"));
    } else {
      return bad(absl::StrCat("unknown scheme \"", scheme,
                              "\" (expected redis, unix, redis-cluster or redis-sentinel)"));
    }
    o.host = kind == kUnix ? std::string() : o.host;
    o.unix_socket.clear();
    o.username.clear();
    o.password.clear();
    o.db = 0;
    o.cluster_nodes.clear();
    o.sentinels.clear();
    o.sentinel_master.clear();

    // Credentials.
    if (sp.has_userinfo) {
      const std::size_t colon = sp.userinfo.find(':');
      std::string_view user = sp.userinfo.substr(0, colon);
      if (colon == std::string_view::npos) {
        return bad("user without a password (write user:password@, or :password@)");
      }
      std::string_view pass = sp.userinfo.substr(colon + 1);
      if (!percent_decode(user, o.username)) return bad("malformed %-escape in the user name");
      if (!percent_decode(pass, o.password)) return bad("malformed %-escape in the password");
      if (!o.username.empty() && o.password.empty()) {
        return bad("user without a password (ACL AUTH needs both)");
      }
    }

    // Query: db=N only.
    int query_db = -1;
    if (sp.has_query) {
      for (std::string_view kv : split_on(sp.query, '&')) {
        if (kv.empty()) continue;
        const std::size_t eq = kv.find('=');
        const std::string_view k = kv.substr(0, eq);
        const std::string_view v =
            eq == std::string_view::npos ? std::string_view() : kv.substr(eq + 1);
        if (k != "db") {
          std::string shown(k.substr(0, 32));
          return bad(absl::StrCat("unknown query parameter \"", shown, "\" (only db=N)"));
        }
        if (query_db >= 0) return bad("db given twice in the query");
        if (absl::Status s = db_number(v, "db in the query", query_db); !s.ok()) return s;
      }
    }

    int path_db = -1;
    std::string_view rest = sp.rest;
    switch (kind) {
      case kUnix: {
        if (rest.empty() || rest.front() != '/') {
          return bad("unix:// needs an absolute socket path (unix:///path/to.sock)");
        }
        if (rest.size() == 1) return bad("empty socket path");
        o.unix_socket.assign(rest);
        break;
      }
      case kTcp: {
        const std::size_t slash = rest.find('/');
        std::string_view hp = rest.substr(0, slash);
        if (hp.empty()) return bad("no host");
        if (hp.find(',') != std::string_view::npos) {
          return bad(
              "redis:// takes one host (use redis-cluster:// or redis-sentinel:// for several)");
        }
        if (absl::Status s = host_port(hp, 6379, "host", o.host, o.port); !s.ok()) return s;
        if (slash != std::string_view::npos) {
          std::string_view path = rest.substr(slash + 1);
          if (!path.empty()) {
            if (absl::Status s = db_number(path, "db (the path)", path_db); !s.ok()) return s;
          }
        }
        break;
      }
      case kCluster:
      case kSentinel: {
        const std::size_t slash = rest.find('/');
        std::string_view hosts = rest.substr(0, slash);
        if (hosts.empty()) return bad("no hosts");
        std::size_t i = 0;
        for (std::string_view hp : split_on(hosts, ',')) {
          ++i;
          const std::string name = absl::StrCat("host ", i);
          if (hp.empty()) return bad(absl::StrCat(name, " is empty"));
          std::string h;
          int p = 0;
          if (absl::Status s = host_port(hp, kind == kCluster ? 6379 : 26379, name, h, p);
              !s.ok()) {
            return s;
          }
          const bool v6 = h.find(':') != std::string::npos;
          (kind == kCluster ? o.cluster_nodes : o.sentinels)
              .push_back(v6 ? absl::StrCat("[", h, "]:", p) : absl::StrCat(h, ":", p));
        }
        std::string_view path =
            slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
        if (kind == kCluster) {
          if (!path.empty()) {
            if (absl::Status s = db_number(path, "db (the path)", path_db); !s.ok()) return s;
          }
        } else {
          const std::size_t s2 = path.find('/');
          std::string_view master = path.substr(0, s2);
          if (master.empty()) return bad("no master name (redis-sentinel://s1:26379/mymaster)");
          if (!percent_decode(master, o.sentinel_master))
            return bad("malformed %-escape in the master name");
          if (s2 != std::string_view::npos) {
            std::string_view d = path.substr(s2 + 1);
            if (absl::Status s = db_number(d, "db (after the master name)", path_db); !s.ok())
              return s;
          }
        }
        break;
      }
    }
    if (path_db >= 0 && query_db >= 0 && path_db != query_db) {
      return bad("db in the path and db in the query disagree");
    }
    o.db = path_db >= 0 ? path_db : (query_db >= 0 ? query_db : 0);
    if (kind == kCluster && o.db != 0)
      return bad("db on a cluster must be 0 (Redis Cluster has only db 0)");
    return o;
  }

 private:
  std::string_view uri_;
};

}  // namespace

absl::StatusOr<RedisOptions> parse_redis_uri(std::string_view uri, RedisOptions defaults) {
  return Parser(uri).parse(std::move(defaults));
}

std::string redact_redis_uri(std::string_view uri) {
  Split sp;
  if (!split(uri, sp) || !sp.has_userinfo) {
    // No credentials we can see. Still never echo anything after an '@'
    // we could not place (defensive: a malformed URI).
    if (uri.find('@') == std::string_view::npos) return std::string(uri);
    const std::size_t at = uri.rfind('@');
    return absl::StrCat("***", av(uri.substr(at)));
  }
  const std::size_t colon = sp.userinfo.find(':');
  const std::string_view before = uri.substr(0, sp.userinfo_pos);
  const std::string_view after = uri.substr(sp.userinfo_pos + sp.userinfo.size());
  if (colon == std::string_view::npos) return absl::StrCat(av(before), "***", av(after));
  return absl::StrCat(av(before), av(sp.userinfo.substr(0, colon)), ":***", av(after));
}

}  // namespace larder
