// core/src/kafka/consumer_protocol: the consumer protocol's subscription and assignment
// messages, byte layouts against hand-written bytes, round trips at every version, and
// malformed inputs that decode to nothing instead of crashing.
#include "kafka/consumer_protocol.h"

#include <catch2/catch.hpp>
#include <string>

#include "kafka/wire.h"

namespace sluice::kafka {
namespace {

std::string bytes(std::initializer_list<int> b) {
  std::string s;
  for (int c : b) s.push_back(static_cast<char>(c));
  return s;
}

ConsumerSubscription full_subscription(std::int16_t version) {
  ConsumerSubscription s;
  s.version = version;
  s.topics = {"orders", "payments"};
  s.user_data = std::string("\x00\x01ud", 4);
  if (version >= 1) s.owned_partitions = {{"orders", {0, 2}}, {"payments", {}}};
  if (version >= 2) s.generation_id = 7;
  if (version >= 3) s.rack_id = "rack-a";
  return s;
}

TEST_CASE("consumer protocol: a v0 subscription has Kafka's byte layout", "[kafka][groups]") {
  ConsumerSubscription s;
  s.topics = {"t"};
  const std::string expected = bytes({0, 0,                      // version 0
                                      0, 0, 0, 1,                // one topic
                                      0, 1, 't',                 // "t"
                                      0xff, 0xff, 0xff, 0xff});  // null user data
  CHECK(encode_consumer_subscription(s) == expected);
  auto d = decode_consumer_subscription(expected);
  REQUIRE(d);
  CHECK(d->version == 0);
  CHECK(d->topics == std::vector<std::string>{"t"});
  CHECK_FALSE(d->user_data);
  CHECK(d->generation_id == -1);
}

TEST_CASE("consumer protocol: subscriptions round-trip at versions 0 to 3", "[kafka][groups]") {
  for (std::int16_t v = 0; v <= 3; ++v) {
    CAPTURE(v);
    const ConsumerSubscription s = full_subscription(v);
    auto d = decode_consumer_subscription(encode_consumer_subscription(s));
    REQUIRE(d);
    CHECK(*d == s);
  }
}

TEST_CASE("consumer protocol: assignments round-trip at versions 0 to 3", "[kafka][groups]") {
  for (std::int16_t v = 0; v <= 3; ++v) {
    CAPTURE(v);
    ConsumerAssignment a;
    a.version = v;
    a.assigned_partitions = {{"orders", {1, 0}}, {"audit", {5}}};
    a.user_data = v % 2 == 0 ? std::optional<std::string>() : std::string("x");
    auto d = decode_consumer_assignment(encode_consumer_assignment(a));
    REQUIRE(d);
    CHECK(*d == a);
  }
}

TEST_CASE("consumer protocol: a newer version is read as v3, extra bytes ignored",
          "[kafka][groups]") {
  std::string enc = encode_consumer_subscription(full_subscription(3));
  enc[1] = 9;  // version 9
  enc += "future fields";
  auto d = decode_consumer_subscription(enc);
  REQUIRE(d);
  CHECK(d->version == 9);
  CHECK(d->rack_id == std::optional<std::string>("rack-a"));
  CHECK(d->generation_id == 7);

  std::string a = encode_consumer_assignment({3, {{"t", {0}}}, std::nullopt});
  a[1] = 4;
  a += "x";
  auto da = decode_consumer_assignment(a);
  REQUIRE(da);
  CHECK(da->version == 4);
  CHECK(da->assigned_partitions.size() == 1);
}

TEST_CASE("consumer protocol: a message ending before optional trailing fields keeps defaults",
          "[kafka][groups]") {
  // Version 1 subscription that stops after its topics (no user data, no owned partitions).
  const std::string s = bytes({0, 1, 0, 0, 0, 1, 0, 1, 't'});
  auto d = decode_consumer_subscription(s);
  REQUIRE(d);
  CHECK(d->topics == std::vector<std::string>{"t"});
  CHECK_FALSE(d->user_data);
  CHECK(d->owned_partitions.empty());
  // Assignment without user data.
  auto a = decode_consumer_assignment(bytes({0, 0, 0, 0, 0, 0}));
  REQUIRE(a);
  CHECK(a->assigned_partitions.empty());
}

TEST_CASE("consumer protocol: malformed bytes decode to nothing", "[kafka][groups]") {
  CHECK_FALSE(decode_consumer_subscription(""));
  CHECK_FALSE(decode_consumer_assignment(""));
  CHECK_FALSE(decode_consumer_subscription(bytes({0})));
  CHECK_FALSE(decode_consumer_subscription(bytes({0xff, 0xff, 0, 0, 0, 0})));  // version -1
  CHECK_FALSE(decode_consumer_assignment(bytes({0x80, 0, 0, 0, 0, 0})));       // negative version
  // Negative topic count other than -1, and a count larger than the bytes could hold.
  CHECK_FALSE(decode_consumer_subscription(bytes({0, 0, 0xff, 0xff, 0xff, 0xfe})));
  CHECK_FALSE(decode_consumer_subscription(bytes({0, 0, 0x7f, 0xff, 0xff, 0xff, 0, 1, 't'})));
  CHECK_FALSE(decode_consumer_assignment(bytes({0, 0, 0x7f, 0xff, 0xff, 0xff})));
  // A topic name longer than the message.
  CHECK_FALSE(decode_consumer_subscription(bytes({0, 0, 0, 0, 0, 1, 0, 9, 't'})));
  // Negative user data length.
  CHECK_FALSE(decode_consumer_assignment(bytes({0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xfe})));
  // A partition array that runs out.
  CHECK_FALSE(decode_consumer_assignment(
      bytes({0, 0, 0, 0, 0, 1, 0, 1, 't', 0, 0, 0, 2, 0, 0, 0, 1, 0, 0})));
}

TEST_CASE("consumer protocol: every truncation of a valid message decodes safely",
          "[kafka][groups]") {
  const std::string sub = encode_consumer_subscription(full_subscription(3));
  const std::string asg =
      encode_consumer_assignment({1, {{"orders", {0, 1, 2}}, {"b", {4}}}, std::string("ud")});
  int accepted = 0;
  for (std::size_t n = 0; n < sub.size(); ++n) {
    auto d = decode_consumer_subscription(std::string_view(sub).substr(0, n));
    if (d) {
      ++accepted;  // only at field boundaries after the topics
      CHECK(d->topics == full_subscription(3).topics);
    }
  }
  CHECK(accepted == 4);  // after topics, user data, owned partitions, generation
  for (std::size_t n = 0; n < asg.size(); ++n) {
    auto d = decode_consumer_assignment(std::string_view(asg).substr(0, n));
    if (d) CHECK(d->assigned_partitions.size() == 2);
  }
  CHECK(decode_consumer_assignment(asg));
}

TEST_CASE("consumer protocol: arbitrary bytes never crash the decoders", "[kafka][groups]") {
  std::uint32_t x = 12345;
  for (int i = 0; i < 2000; ++i) {
    std::string junk;
    const std::size_t len = static_cast<std::size_t>(i % 40);
    for (std::size_t k = 0; k < len; ++k) {
      x = x * 1664525u + 1013904223u;
      junk.push_back(static_cast<char>(x >> 24));
    }
    (void)decode_consumer_subscription(junk);
    (void)decode_consumer_assignment(junk);
  }
  SUCCEED();
}

}  // namespace
}  // namespace sluice::kafka
