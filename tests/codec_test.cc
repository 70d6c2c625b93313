// SPDX-License-Identifier: Apache-2.0
#include "larder/codec.h"

#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace larder {
namespace {

template <class T>
T round_trip(const T& v) {
  std::string bytes = encode_to_string(v);
  absl::StatusOr<T> back = decode_from<T>(bytes);
  EXPECT_TRUE(back.ok()) << back.status();
  return back.ok() ? *back : T{};
}

TEST(CodecTest, StringRoundTripsAnyBytes) {
  EXPECT_EQ(round_trip(std::string()), "");
  EXPECT_EQ(round_trip(std::string("hello")), "hello");
  const std::string binary("\0\xff\x01zz\0", 6);
  EXPECT_EQ(round_trip(binary), binary);
}

TEST(CodecTest, EncodeAppends) {
  std::string out = "prefix:";
  Codec<std::string>::encode("abc", out);
  Codec<std::uint16_t>::encode(0x0102, out);
  EXPECT_EQ(out, std::string("prefix:abc\x02\x01", 12));
}

template <class T>
class ArithmeticCodecTest : public ::testing::Test {};
using ArithmeticTypes =
    ::testing::Types<std::int8_t, std::uint8_t, std::int16_t, std::uint16_t, std::int32_t,
                     std::uint32_t, std::int64_t, std::uint64_t, float, double, char>;
TYPED_TEST_SUITE(ArithmeticCodecTest, ArithmeticTypes);

TYPED_TEST(ArithmeticCodecTest, RoundTripsExtremes) {
  using T = TypeParam;
  for (T v : {std::numeric_limits<T>::min(), std::numeric_limits<T>::max(),
              std::numeric_limits<T>::lowest(), T(0), T(1), T(42)}) {
    EXPECT_EQ(round_trip(v), v);
    EXPECT_EQ(encode_to_string(v).size(), sizeof(T));
  }
}

TYPED_TEST(ArithmeticCodecTest, WrongLengthIsDataLoss) {
  using T = TypeParam;
  std::string bytes = encode_to_string(T(7));
  bytes.push_back('x');
  EXPECT_EQ(decode_from<T>(bytes).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(decode_from<T>("").status().code(), absl::StatusCode::kDataLoss);
}

TEST(CodecTest, IntegersAreLittleEndianOnEveryHost) {
  EXPECT_EQ(encode_to_string(std::uint32_t{0x01020304}), std::string("\x04\x03\x02\x01", 4));
  EXPECT_EQ(encode_to_string(std::int64_t{-2}), std::string("\xfe\xff\xff\xff\xff\xff\xff\xff", 8));
  // A fixed byte pattern decodes to the same number everywhere.
  EXPECT_EQ(*decode_from<std::uint16_t>(std::string("\x34\x12", 2)), 0x1234);
}

TEST(CodecTest, DoubleKeepsSpecialValues) {
  EXPECT_EQ(round_trip(std::numeric_limits<double>::infinity()),
            std::numeric_limits<double>::infinity());
  EXPECT_TRUE(std::isnan(round_trip(std::numeric_limits<double>::quiet_NaN())));
  EXPECT_EQ(encode_to_string(1.0), std::string("\0\0\0\0\0\0\xf0\x3f", 8));
}

TEST(CodecTest, BoolIsStrict) {
  EXPECT_TRUE(round_trip(true));
  EXPECT_FALSE(round_trip(false));
  EXPECT_EQ(decode_from<bool>("\x02").status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(decode_from<bool>("").status().code(), absl::StatusCode::kDataLoss);
}

enum class Color : std::uint16_t { kRed = 1, kBlue = 0x0203 };

TEST(CodecTest, EnumsGoAsUnderlying) {
  EXPECT_EQ(round_trip(Color::kBlue), Color::kBlue);
  EXPECT_EQ(encode_to_string(Color::kBlue), std::string("\x03\x02", 2));
}

struct Point {
  std::int32_t x;
  std::int32_t y;
  double weight;
  bool operator==(const Point&) const = default;
};
}  // namespace
template <>
inline constexpr bool kBytewiseCodec<Point> = true;  // every byte pattern is a Point
namespace {

// A struct with a bool member: trivially copyable, but not every byte pattern
// is a value (a bool holds 0 or 1). The raw-bytes codec used to decode any 16
// bytes into it, so a byte 2 from Redis or a journal was a load of an invalid
// bool (UBSan: "load of value 2, which is not a valid value for type 'bool'").
// Now it has no built-in codec unless its author opts in.
struct Flagged {
  std::int64_t id;
  bool active;
};
enum Unfixed { kUnfixedA, kUnfixedB };  // valid values are 0 and 1 only
enum FixedPlain : std::uint8_t { kFixedA, kFixedB };

static_assert(!CodecFor<Codec<Flagged>, Flagged>,
              "a struct with a bool member must not get the raw-bytes codec by default");
static_assert(!CodecFor<Codec<Unfixed>, Unfixed>,
              "an enum without a fixed underlying type must not get the integer codec");
static_assert(CodecFor<Codec<FixedPlain>, FixedPlain>);
static_assert(CodecFor<Codec<Color>, Color>);
static_assert(CodecFor<Codec<Point>, Point>);

TEST(CodecTest, EnumWithFixedTypeDecodesAnyValueOfIt) {
  // Every uint8_t is a valid FixedPlain (its type is fixed), so no value is UB.
  absl::StatusOr<FixedPlain> e = decode_from<FixedPlain>("\x07");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(static_cast<int>(*e), 7);
  EXPECT_EQ(encode_to_string(*e), "\x07");
}

TEST(CodecTest, TriviallyCopyableStructRoundTrips) {
  const Point p{-3, 7, 0.5};
  EXPECT_EQ(round_trip(p), p);
  EXPECT_EQ(encode_to_string(p).size(), sizeof(Point));
  EXPECT_EQ(decode_from<Point>("short").status().code(), absl::StatusCode::kDataLoss);
}

TEST(CodecTest, VectorOfArithmetic) {
  const std::vector<std::int32_t> v{1, -2, 3, std::numeric_limits<std::int32_t>::max()};
  EXPECT_EQ(round_trip(v), v);
  EXPECT_EQ(round_trip(std::vector<double>{}), std::vector<double>{});
  EXPECT_EQ(decode_from<std::vector<std::int32_t>>("abcde").status().code(),
            absl::StatusCode::kDataLoss);
}

TEST(CodecTest, SharedPtrForwardsAndKeepsNull) {
  auto v = std::make_shared<const std::string>("big value");
  std::shared_ptr<const std::string> back = round_trip(v);
  ASSERT_NE(back, nullptr);
  EXPECT_EQ(*back, "big value");
  EXPECT_EQ(round_trip(std::shared_ptr<const std::string>()), nullptr);

  auto p = std::make_shared<const Point>(Point{1, 2, 3});
  EXPECT_EQ(*round_trip(p), *p);

  using SP = std::shared_ptr<const std::int64_t>;
  EXPECT_EQ(decode_from<SP>("").status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(decode_from<SP>("\x07").status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(decode_from<SP>(std::string("\0x", 2)).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(decode_from<SP>("\x01"
                            "abc")
                .status()
                .code(),
            absl::StatusCode::kDataLoss);
}

// A user's codec: a type that is not trivially copyable, with a hand-written
// wire form (what a protobuf or JSON codec looks like to larder).
struct User {
  std::string name;
  std::int32_t age = 0;
  bool operator==(const User&) const = default;
};

}  // namespace

template <>
struct Codec<User> {
  static void encode(const User& u, std::string& out) {
    Codec<std::int32_t>::encode(u.age, out);
    out += u.name;
  }
  static absl::StatusOr<User> decode(std::string_view b) {
    if (b.size() < 4) return absl::DataLossError("User: too short");
    absl::StatusOr<std::int32_t> age = Codec<std::int32_t>::decode(b.substr(0, 4));
    if (!age.ok()) return age.status();
    return User{std::string(b.substr(4)), *age};
  }
};

namespace {

static_assert(CodecFor<Codec<User>, User>);
static_assert(CodecFor<Codec<std::string>, std::string>);
static_assert(CodecFor<Codec<double>, double>);

TEST(CodecTest, UserSpecialisationPlugsIn) {
  const User u{"ada", 36};
  EXPECT_EQ(round_trip(u), u);
  auto sp = std::make_shared<const User>(u);
  EXPECT_EQ(*round_trip(sp), u);
  EXPECT_EQ(decode_from<User>("ab").status().code(), absl::StatusCode::kDataLoss);
}

// ---- DefaultKeyCodec: how keys leave the process ----

enum class Shard : std::uint16_t { kA = 3 };

TEST(DefaultKeyCodecTest, IntegersAreDecimalText) {
  EXPECT_EQ((encode_to_string<std::int64_t, DefaultKeyCodec<std::int64_t>>(42)), "42");
  EXPECT_EQ((encode_to_string<std::int64_t, DefaultKeyCodec<std::int64_t>>(-7)), "-7");
  EXPECT_EQ((encode_to_string<std::uint64_t, DefaultKeyCodec<std::uint64_t>>(
                std::numeric_limits<std::uint64_t>::max())),
            "18446744073709551615");
  EXPECT_EQ((encode_to_string<int, DefaultKeyCodec<int>>(0)), "0");
  EXPECT_EQ((encode_to_string<Shard, DefaultKeyCodec<Shard>>(Shard::kA)), "3");
  EXPECT_EQ((encode_to_string<std::string, DefaultKeyCodec<std::string>>("k")), "k");
  EXPECT_EQ(DefaultKeyCodec<std::int64_t>::decode("-9223372036854775808").value(),
            std::numeric_limits<std::int64_t>::min());
  EXPECT_EQ(DefaultKeyCodec<Shard>::decode("3").value(), Shard::kA);
}

TEST(DefaultKeyCodecTest, OnlyTheCanonicalFormDecodes) {
  for (const char* bad : {"", "+1", " 1", "1 ", "01", "-0", "1x", "0x10", "99999999999"}) {
    EXPECT_EQ(DefaultKeyCodec<std::int32_t>::decode(bad).status().code(),
              absl::StatusCode::kDataLoss)
        << "'" << bad << "'";
  }
  EXPECT_EQ(DefaultKeyCodec<std::uint8_t>::decode("256").status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(DefaultKeyCodec<std::uint32_t>::decode("-1").status().code(),
            absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace larder
