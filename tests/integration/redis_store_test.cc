// SPDX-License-Identifier: Apache-2.0
//
// RedisStore against a real redis-server: the Store contract, codecs, the
// entry encoding and PX, MGET chunking, key_prefix isolation, corrupt and
// foreign values, clear(), unix sockets, SELECT db, AUTH (password and ACL
// user, on private servers).
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "larder/internal/mutex.h"
#include "larder/redis.h"
#include "tests/integration/redis_test_util.h"
#include "tests/testing/store_contract.h"
#include "tests/testing/testing.h"

// ---- The Store contract ----
namespace larder::testing {
namespace {

struct RedisStoreFactory {
  static void skip_without_server() {
    if (!test_redis()) {
      if (redis_required()) {
        ADD_FAILURE() << "LARDER_TEST_REQUIRE_REDIS=1 but LARDER_TEST_REDIS_HOST/PORT unset";
      }
      GTEST_SKIP() << "no Redis server";
    }
  }
  static std::shared_ptr<Store<std::string, std::string>> make(std::shared_ptr<Clock> clock) {
    skip_without_server();
    if (::testing::Test::IsSkipped() || ::testing::Test::HasFailure()) return nullptr;
    RedisOptions o = options_for(*test_redis());
    o.clock = std::move(clock);
    // The deleter empties the test's key_prefix: the contract leaves no keys behind.
    return std::shared_ptr<RedisStore<std::string, std::string>>(
        new RedisStore<std::string, std::string>(o), [](RedisStore<std::string, std::string>* s) {
          EXPECT_TRUE(s->clear().ok());
          delete s;
        });
  }
};
using Factories = ::testing::Types<RedisStoreFactory>;
INSTANTIATE_TYPED_TEST_SUITE_P(Redis, StoreContractTest, Factories);
}  // namespace
}  // namespace larder::testing

namespace larder {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::options_for;
using testing::RedisServer;

// ---- Helpers ----

// LogSink: collects what the store logs.
struct LogSink {
  internal::Mutex mu;
  std::vector<std::string> lines;
  RedisLogHook hook() {
    return [this](RedisLogLevel, std::string_view m) {
      internal::MutexLock l(&mu);
      lines.emplace_back(m);
    };
  }
  std::size_t size() {
    internal::MutexLock l(&mu);
    return lines.size();
  }
};

// raw: runs one command through the store's client; returns the reply as text
// (integers in decimal, nil as "(nil)").
std::string raw(RedisClient& c, std::vector<std::string> args) {
  std::vector<std::string_view> v(args.begin(), args.end());
  std::string out;
  absl::Status s = c.command(
      v,
      [&](std::size_t, RedisReplyRef r) {
        switch (r.type()) {
          case RedisReplyType::kInteger:
            out = std::to_string(r.integer());
            break;
          case RedisReplyType::kNil:
            out = "(nil)";
            break;
          default:
            out = std::string(r.str());
        }
      },
      "raw");
  EXPECT_TRUE(s.ok()) << s;
  return out;
}

template <class V>
Entry<V> entry_in(V v, milliseconds fresh, milliseconds stale,
                  TimePoint now = std::chrono::system_clock::now()) {
  return Entry<V>{std::move(v), now + fresh, now + stale};
}

// A store that clears its prefix when the test ends.
template <class K, class V, class VC = Codec<V>, class KC = DefaultKeyCodec<K>>
struct ScopedStore {
  explicit ScopedStore(RedisOptions o) : store(std::make_shared<RedisStore<K, V, VC, KC>>(o)) {}
  ~ScopedStore() { EXPECT_TRUE(store->clear().ok()); }
  RedisStore<K, V, VC, KC>* operator->() { return store.get(); }
  std::shared_ptr<RedisStore<K, V, VC, KC>> store;
};

// ---- Codecs ----

enum class Color : std::uint8_t { kRed = 1, kBlue = 7 };
struct Point {
  std::int32_t x;
  double y;
  bool operator==(const Point&) const = default;
};
}  // namespace
// Every byte pattern is a Point (an int32 and a double): it may opt in to
// the raw-bytes codec.
template <>
inline constexpr bool kBytewiseCodec<Point> = true;
namespace {

// A user's codec for a user's type, passed explicitly (the documented way for
// types one cannot or would rather not specialise larder::Codec for; a
// protobuf would call SerializeToString / ParseFromArray here).
struct User {
  std::string name;
  int age = 0;
  bool operator==(const User&) const = default;
};
struct UserJsonCodec {
  static void encode(const User& u, std::string& out) {
    absl::StrAppend(&out, "{\"name\":\"", u.name, "\",\"age\":", u.age, "}");
  }
  static absl::StatusOr<User> decode(std::string_view b) {
    // Deliberately small: {"name":"<no quotes>","age":<int>}
    constexpr std::string_view kHead = "{\"name\":\"";
    const std::size_t q = b.find('"', kHead.size());
    const std::size_t a = b.find("\",\"age\":");
    if (b.substr(0, kHead.size()) != kHead || q == std::string_view::npos || q != a || b.empty() ||
        b.back() != '}') {
      return absl::DataLossError("not a User JSON object");
    }
    User u;
    u.name = std::string(b.substr(kHead.size(), q - kHead.size()));
    const std::string_view num = b.substr(a + 8, b.size() - a - 9);
    if (!absl::SimpleAtoi(internal::av(num), &u.age)) return absl::DataLossError("bad age");
    return u;
  }
};
static_assert(CodecFor<UserJsonCodec, User>);

template <class K, class V, class VC = Codec<V>>
void round_trip(const testing::RedisAddress& addr, const K& key, const V& value) {
  ScopedStore<K, V, VC> s(options_for(addr));
  ASSERT_TRUE(s->put(key, entry_in(value, seconds(10), seconds(20))).ok());
  auto got = s->get(key);
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ((*got)->value, value);
}

TEST(RedisStoreTest, EveryBuiltInCodecRoundTrips) {
  LARDER_REQUIRE_REDIS_OR_SKIP(addr);
  round_trip<std::string, std::string>(addr, "s", std::string("bytes\0\xff", 7));
  round_trip<std::int64_t, std::int64_t>(addr, -5, INT64_MIN);
  round_trip<std::uint32_t, double>(addr, 7u, -1.25e300);
  round_trip<int, float>(addr, 1, 3.5f);
  round_trip<std::string, bool>(addr, "b", true);
  round_trip<std::string, Color>(addr, "e", Color::kBlue);
  round_trip<std::string, Point>(addr, "p", Point{-3, 2.5});
  round_trip<std::string, std::vector<std::int32_t>>(addr, "v",
                                                     std::vector<std::int32_t>{1, -2, 3});
  round_trip<std::string, std::vector<std::int32_t>>(addr, "v0", std::vector<std::int32_t>{});
  {
    ScopedStore<std::string, std::shared_ptr<const std::string>> s(options_for(addr));
    auto v = std::make_shared<const std::string>("shared");
    ASSERT_TRUE(
        s->put("sp", entry_in(std::shared_ptr<const std::string>(v), seconds(5), seconds(5))).ok());
    auto got = s->get("sp");
    ASSERT_TRUE(got.ok() && got->has_value());
    EXPECT_EQ(*(*got)->value, "shared");
  }
  round_trip<std::string, User, UserJsonCodec>(addr, "u", User{"ada", 36});
}

// Integer keys are decimal text (redis-cli and a trigger's PUBLISH can name
// them); integer values stay fixed-width little-endian.
TEST(RedisStoreTest, IntegerKeysAreDecimalTextValuesLittleEndian) {
  LARDER_REQUIRE_REDIS_OR_SKIP(addr);
  RedisOptions o = options_for(addr);
  ScopedStore<std::uint32_t, std::uint32_t> s(o);
  ASSERT_TRUE(
      s->put(0x01020304u, entry_in<std::uint32_t>(0x0a0b0c0du, seconds(5), seconds(5))).ok());
  const std::string key = s->redis_key(0x01020304u);
  EXPECT_EQ(key, o.key_prefix + "16909060");
  ScopedStore<std::int64_t, std::string> neg(options_for(addr, o.key_prefix + "neg:"));
  ASSERT_TRUE(neg->put(-42, entry_in<std::string>("x", seconds(5), seconds(5))).ok());
  EXPECT_EQ(raw(*neg->client(), {"EXISTS", o.key_prefix + "neg:-42"}), "1");
  const std::string v = raw(*s->client(), {"GET", key});
  ASSERT_EQ(v.size(), internal::kRedisEntryHeaderSize + 4);
  EXPECT_EQ(v.substr(internal::kRedisEntryHeaderSize), std::string("\x0d\x0c\x0b\x0a", 4));
}

// ---- Entry encoding and expiry ----

TEST(RedisStoreTest, StaleUntilBecomesPxAndFreshUntilRidesInTheHeader) {
  LARDER_REQUIRE_REDIS_OR_SKIP(addr);
  auto clock = std::make_shared<ManualClock>(std::chrono::system_clock::now());
  RedisOptions o = options_for(addr);
  o.clock = clock;
  ScopedStore<std::string, std::string> s(o);
  const TimePoint now = clock->now();
  ASSERT_TRUE(s->put("k", Entry<std::string>{"v", now + seconds(2), now + seconds(60)}).ok());
  const long long pttl = std::stoll(raw(*s->client(), {"PTTL", s->redis_key("k")}));
  EXPECT_GT(pttl, 50'000);  // generous: the server's clock is real
  EXPECT_LE(pttl, 60'000);
  auto got = s->get("k");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ(to_unix_millis((*got)->fresh_until), to_unix_millis(now + seconds(2)));
  EXPECT_EQ((*got)->age(clock->now()), Age::kFresh);
  clock->advance(seconds(3));
  EXPECT_EQ((*got)->age(clock->now()), Age::kStale);

  // An entry already expired by the store's clock replaces nothing: the key goes.
  ASSERT_TRUE(s->put("k", Entry<std::string>{"old", now - seconds(2), now - seconds(1)}).ok());
  EXPECT_EQ(raw(*s->client(), {"EXISTS", s->redis_key("k")}), "0");
}

TEST(RedisStoreTest, EntryPastStaleUntilByOurClockIsAMiss) {
  LARDER_REQUIRE_REDIS_OR_SKIP(addr);
  auto clock = std::make_shared<ManualClock>(std::chrono::system_clock::now());
  RedisOptions o = options_for(addr);
  o.clock = clock;
  ScopedStore<std::string, int> s(o);
  ASSERT_TRUE(
      s->put("k", Entry<int>{1, clock->now() + seconds(1), clock->now() + seconds(2)}).ok());
  clock->advance(seconds(3));  // Redis still has it (PX 2000); our clock says expired
  auto got = s->get("k");
  ASSERT_TRUE(got.ok());
  EXPECT_FALSE(got->has_value());
  EXPECT_EQ(s->counters().expirations, 1u);
  EXPECT_EQ(s->counters().errors, 0u);
}

// ---- Batches ----

TEST(RedisStoreTest, GetManyChunksIntoPipelinedMgets) {
  RedisServer server;  // private: we read its command statistics
  ASSERT_TRUE(server.running());
  RedisOptions o = server.options();
  o.batch_chunk = 7;
  ScopedStore<int, int> s(o);
  std::vector<std::pair<int, Entry<int>>> items;
  for (int i = 0; i < 50; i += 2) items.emplace_back(i, entry_in(i * 10, seconds(10), seconds(10)));
  ASSERT_TRUE(s->put_many(items).ok());
  raw(*s->client(), {"CONFIG", "RESETSTAT"});
  std::vector<int> keys(50);
  for (int i = 0; i < 50; ++i) keys[i] = i;
  auto got = s->get_many(keys);
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->size(), 50u);
  for (int i = 0; i < 50; ++i) {
    if (i % 2 == 0) {
      ASSERT_TRUE((*got)[i].has_value()) << i;
      EXPECT_EQ((*got)[i]->value, i * 10);
    } else {
      EXPECT_FALSE((*got)[i].has_value()) << i;
    }
  }
  const std::string info = raw(*s->client(), {"INFO", "commandstats"});
  EXPECT_NE(info.find("cmdstat_mget:calls=8,"), std::string::npos) << info;  // ceil(50 / 7)
  EXPECT_EQ(info.find("cmdstat_get:"), std::string::npos) << info;
  EXPECT_EQ(s->counters().hits, 25u);
  EXPECT_EQ(s->counters().misses, 25u);

  // erase_many: UNLINK, chunked the same way.
  ASSERT_TRUE(s->erase_many(keys).ok());
  EXPECT_NE(raw(*s->client(), {"INFO", "commandstats"}).find("cmdstat_unlink:calls=8,"),
            std::string::npos);
  got = s->get_many(keys);
  ASSERT_TRUE(got.ok());
  for (const auto& e : *got) EXPECT_FALSE(e.has_value());
}

TEST(RedisStoreTest, LargePutManyIsOnePipeline) {
  LARDER_REQUIRE_REDIS_OR_SKIP(addr);
  ScopedStore<int, std::string> s(options_for(addr));
  std::vector<std::pair<int, Entry<std::string>>> items;
  const std::string big(2000, 'x');  // ~10 MB in all: exercises partial writes
  for (int i = 0; i < 5000; ++i)
    items.emplace_back(i, entry_in(big + std::to_string(i), seconds(10), seconds(10)));
  ASSERT_TRUE(s->put_many(items).ok());
  std::vector<int> keys{0, 2500, 4999};
  auto got = s->get_many(keys);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ((*got)[1]->value, big + "2500");
  EXPECT_EQ((*got)[2]->value, big + "4999");
}

// ---- Namespaces ----

TEST(RedisStoreTest, KeyPrefixIsolatesStoresAndClearStaysInside) {
  LARDER_REQUIRE_REDIS_OR_SKIP(addr);
  const std::string base = testing::unique_prefix();
  ScopedStore<std::string, std::string> a(options_for(addr, base + "a*:"));  // a glob special
  ScopedStore<std::string, std::string> b(options_for(addr, base + "ab:"));
  ASSERT_TRUE(a->put("k", entry_in<std::string>("A", seconds(10), seconds(10))).ok());
  ASSERT_TRUE(b->put("k", entry_in<std::string>("B", seconds(10), seconds(10))).ok());
  EXPECT_EQ((*a->get("k"))->value, "A");
  EXPECT_EQ((*b->get("k"))->value, "B");
  for (int i = 0; i < 30; ++i) {
    ASSERT_TRUE(
        a->put("x" + std::to_string(i), entry_in<std::string>("a", seconds(10), seconds(10))).ok());
  }
  RedisOptions small = options_for(addr, base + "a*:");
  small.batch_chunk = 4;  // several SCAN steps
  RedisStore<std::string, std::string> a2(small);
  ASSERT_TRUE(a2.clear().ok());
  EXPECT_FALSE(a->get("k")->has_value());
  EXPECT_FALSE(a->get("x17")->has_value());
  EXPECT_EQ((*b->get("k"))->value, "B");  // "a*:" must not match "ab:"

  RedisStore<std::string, std::string> everything(options_for(addr, ""));
  EXPECT_EQ(everything.clear().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(RedisStoreTest, SelectsTheConfiguredDatabase) {
  LARDER_REQUIRE_REDIS_OR_SKIP(addr);
  RedisOptions o = options_for(addr);
  o.db = 3;
  ScopedStore<std::string, std::string> in3(o);
  ScopedStore<std::string, std::string> in0(options_for(addr, o.key_prefix));
  ASSERT_TRUE(in3->put("k", entry_in<std::string>("v", seconds(10), seconds(10))).ok());
  EXPECT_TRUE(in3->get("k")->has_value());
  EXPECT_FALSE(in0->get("k")->has_value());
}

TEST(RedisStoreTest, UnixSocket) {
  LARDER_REQUIRE_REDIS_OR_SKIP(addr);
  if (addr.unix_socket.empty()) GTEST_SKIP() << "LARDER_TEST_REDIS_SOCKET not set";
  RedisOptions o = options_for(addr);
  o.host.clear();
  o.port = 0;
  o.unix_socket = addr.unix_socket;
  ScopedStore<std::string, std::string> s(o);
  ASSERT_TRUE(s->put("k", entry_in<std::string>("v", seconds(10), seconds(10))).ok());
  auto got = s->get("k");
  ASSERT_TRUE(got.ok() && got->has_value()) << got.status();
  EXPECT_EQ((*got)->value, "v");
}

// ---- Values that are not ours ----

TEST(RedisStoreTest, CorruptAndForeignValuesAreCountedLoggedMisses) {
  LARDER_REQUIRE_REDIS_OR_SKIP(addr);
  LogSink sink;
  RedisOptions o = options_for(addr);
  o.log = sink.hook();
  ScopedStore<std::string, std::int64_t> s(o);
  RedisClient& c = *s->client();
  std::string header;
  // A valid header (stale_until an hour from now), so each case below is
  // refused for its own fault, not for an out-of-range instant.
  internal::append_redis_entry_header(
      0, to_unix_millis(std::chrono::system_clock::now() + std::chrono::hours(1)), header);
  std::string v2 = header;
  v2[1] = 2;  // another format version
  raw(c, {"SET", s->redis_key("foreign"), "hello, written by someone else"});
  raw(c, {"SET", s->redis_key("version2"), v2 + std::string(8, '\0')});
  raw(c, {"SET", s->redis_key("truncated"), header.substr(0, 9)});
  raw(c, {"SET", s->redis_key("badpayload"), header + "abc"});  // int64 needs 8 bytes
  raw(c, {"SET", s->redis_key("empty"), ""});
  raw(c, {"HSET", s->redis_key("hash"), "f", "v"});  // another Redis type
  ASSERT_TRUE(s->put("good", entry_in<std::int64_t>(42, seconds(10), seconds(10))).ok());

  const std::vector<std::string> bad{"foreign",    "version2", "truncated",
                                     "badpayload", "empty",    "hash"};
  for (const std::string& k : bad) {
    auto got = s->get(k);
    ASSERT_TRUE(got.ok()) << k << ": " << got.status();
    EXPECT_FALSE(got->has_value()) << k;
  }
  EXPECT_EQ(s->counters().errors, bad.size());
  EXPECT_EQ(s->counters().misses, bad.size());
  EXPECT_EQ(sink.size(), bad.size());

  std::vector<std::string> all = bad;
  all.push_back("good");
  auto many = s->get_many(all);
  ASSERT_TRUE(many.ok()) << many.status();
  for (std::size_t i = 0; i < bad.size(); ++i) EXPECT_FALSE((*many)[i].has_value()) << bad[i];
  ASSERT_TRUE((*many)[bad.size()].has_value());
  EXPECT_EQ((*many)[bad.size()]->value, 42);
  // MGET answers nil for the hash (not a string): a plain miss, not an error.
  EXPECT_EQ(s->counters().errors, 2 * bad.size() - 1);
}

TEST(RedisStoreTest, BadOptionsThrowNamingTheField) {
  auto msg = [](RedisOptions o) -> std::string {
    try {
      RedisStore<std::string, int> s(std::move(o));
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return "";
  };
  RedisOptions o;
  o.pool_size = 0;
  EXPECT_NE(msg(o).find("pool_size"), std::string::npos);
  o = {};
  o.command_timeout = milliseconds(0);
  EXPECT_NE(msg(o).find("command_timeout"), std::string::npos);
  o = {};
  o.username = "alice";
  EXPECT_NE(msg(o).find("password"), std::string::npos);
  o = {};
  o.port = 70000;
  EXPECT_NE(msg(o).find("port"), std::string::npos);
  o = {};
  o.batch_chunk = 0;
  EXPECT_NE(msg(o).find("batch_chunk"), std::string::npos);
}

// ---- AUTH (private servers) ----

TEST(RedisStoreTest, AuthWithRequirepass) {
  RedisServer server({"--requirepass", "s3cret"});
  ASSERT_TRUE(server.running());
  RedisOptions o = server.options();
  o.breaker_failures = 0;
  o.password = "s3cret";
  RedisStore<std::string, int> good(o);
  ASSERT_TRUE(good.put("k", entry_in(1, seconds(10), seconds(10))).ok());
  EXPECT_EQ((*good.get("k"))->value, 1);

  o.password = "wrong";
  RedisStore<std::string, int> wrong(o);
  EXPECT_EQ(wrong.get("k").status().code(), absl::StatusCode::kPermissionDenied);

  o.password.clear();
  RedisStore<std::string, int> none(o);
  EXPECT_EQ(none.get("k").status().code(), absl::StatusCode::kPermissionDenied);  // NOAUTH
}

TEST(RedisStoreTest, AuthWithAclUser) {
  RedisServer server({"--user", "default", "off", "--user", "alice", "on", ">wonderland",
                      "~larder-test:*", "+@all", "--user", "bob", "on", ">builder", "~elsewhere:*",
                      "+@all"});
  ASSERT_TRUE(server.running());
  RedisOptions o = server.options();
  o.breaker_failures = 0;
  o.username = "alice";
  o.password = "wonderland";
  RedisStore<std::string, int> alice(o);
  ASSERT_TRUE(alice.put("k", entry_in(7, seconds(10), seconds(10))).ok());
  EXPECT_EQ((*alice.get("k"))->value, 7);

  o.password = "nope";
  RedisStore<std::string, int> bad(o);
  EXPECT_EQ(bad.get("k").status().code(), absl::StatusCode::kPermissionDenied);

  o.username = "bob";  // authenticates, but may not touch larder-test:* keys
  o.password = "builder";
  RedisStore<std::string, int> bob(o);
  EXPECT_EQ(bob.get("k").status().code(), absl::StatusCode::kPermissionDenied);  // NOPERM
}

}  // namespace
}  // namespace larder
