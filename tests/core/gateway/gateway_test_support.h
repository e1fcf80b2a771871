// Helpers for the Kafka gateway's end-to-end tests (tests/core/gateway/): an embedded
// sluice::Broker with its Kafka listener on 127.0.0.1:0 and a data directory of its own under
// /dev/shm, and a small blocking raw Kafka client on POSIX sockets that sends request frames
// built with the codec (core/src/kafka/messages.h) and reads one response frame at a time with
// a timeout.
//
// Thread-safety: a KafkaClient belongs to one thread; a GatewayBroker is started and stopped
// by the test's thread.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include "core/scratch_support.h"
#include "kafka/compression.h"
#include "kafka/consumer_protocol.h"
#include "kafka/messages.h"
#include "kafka/protocol.h"
#include "kafka/record_batch.h"
#include "shm/clock.h"
#include "shm/crc32c.h"
#include "sluice/admin.h"
#include "sluice/broker.h"
#include "sluice/consumer.h"
#include "sluice/producer.h"
#include "sluice/status.h"
#include "sluice/types.h"

namespace sluice::gateway_test {

using kafka::ApiKey;
using kafka::ErrorCode;

#define GT_REQUIRE_OK(expr)                      \
  do {                                           \
    ::sluice::Status require_ok_status = (expr); \
    INFO(require_ok_status.message());           \
    REQUIRE(require_ok_status.is_ok());          \
  } while (false)

using core_test::must;
using core_test::now_ms;
using core_test::sleep_ms;
inline std::int64_t wall_ms() {
  return shm::wall_clock_ns() / 1'000'000;
}

// Polls `done` every few ms until it holds or `timeout_ms` passes; returns the last answer.
inline bool eventually(const std::function<bool()>& done, std::int64_t timeout_ms = 5000) {
  return core_test::poll_until(done, timeout_ms);
}

// ---- the embedded broker ---------------------------------------------------------------------

// /dev/shm/sluice-gw-<pid>-<n>-<test name>: one data directory per test, removed at the end.
class GatewayDataDir : public core_test::ScratchDataDir {
 public:
  GatewayDataDir() : ScratchDataDir("sluice-gw-") {}
};

// An embedded broker with the Kafka gateway on 127.0.0.1:<free port>. `tweak` adjusts the
// configuration (auto_create_topics, limits, ...) before the start. Small defaults keep the
// group tests fast: initial_rebalance_delay_ms 50, two gateway threads.
class GatewayBroker {
 public:
  explicit GatewayBroker(const std::function<void(BrokerConfig&)>& tweak = {}) {
    config_.data_dir = dir_.path();
    config_.kafka_listen = "127.0.0.1:0";
    config_.kafka_threads = 2;
    config_.initial_rebalance_delay_ms = 50;
    config_.housekeeping_ms = 20;
    if (tweak) tweak(config_);
    start();
  }
  ~GatewayBroker() {
    if (broker_) broker_->stop();
    broker_.reset();
  }
  GatewayBroker(const GatewayBroker&) = delete;
  GatewayBroker& operator=(const GatewayBroker&) = delete;

  // Stops the broker and starts another on the same data directory (a new port: clients
  // connect again).
  void restart() {
    broker_->stop();
    broker_.reset();
    start();
  }

  const std::string& data_dir() const { return dir_.path(); }
  const std::string& address() const { return address_; }
  const std::string& host() const { return host_; }
  std::uint16_t port() const { return port_; }
  Broker& broker() { return *broker_; }

  // Through a short-lived Admin (the control socket).
  void create_topic(const std::string& name, std::int32_t partitions = 1, TopicConfig config = {}) {
    config.partitions = partitions;
    auto admin = must(Admin::connect(dir_.path()));
    GT_REQUIRE_OK(admin.create_topic(name, config));
  }
  std::optional<TopicDescription> describe_topic(const std::string& name) {
    auto admin = must(Admin::connect(dir_.path()));
    auto d = admin.describe_topic(name);
    if (!d) return std::nullopt;
    return std::move(d).value();
  }
  std::int64_t end_offset(const std::string& topic, std::int32_t partition = 0) {
    auto d = describe_topic(topic);
    REQUIRE(d.has_value());
    for (const auto& p : d->partitions)
      if (p.partition == partition) return p.end_offset;
    FAIL("topic " << topic << " has no partition " << partition);
    return -1;
  }

 private:
  void start() {
    broker_ = must(Broker::start(config_));
    address_ = broker_->kafka_address();
    REQUIRE(!address_.empty());
    auto colon = address_.rfind(':');
    REQUIRE(colon != std::string::npos);
    host_ = address_.substr(0, colon);
    port_ = static_cast<std::uint16_t>(std::stoi(address_.substr(colon + 1)));
    REQUIRE(port_ != 0);
  }

  GatewayDataDir dir_;  // outlives the broker (declared first, destroyed last)
  BrokerConfig config_;
  std::unique_ptr<Broker> broker_;
  std::string address_;
  std::string host_;
  std::uint16_t port_ = 0;
};

// ---- the raw Kafka client --------------------------------------------------------------------

// A response frame's bytes stay here (on the heap, so that moving the Reply keeps the body's
// string_views valid), with the body decoded at the request's version.
template <class Response>
struct Reply {
  std::unique_ptr<std::string> frame;
  std::int32_t correlation_id = 0;
  Response body;
  const Response* operator->() const { return &body; }
};

enum class ReadStatus { kFrame, kClosed, kTimeout };

struct FrameRead {
  ReadStatus status = ReadStatus::kTimeout;
  std::string body;  // after the size prefix: correlation id, then the response body
};

inline std::string_view read_status_name(ReadStatus s) {
  switch (s) {
    case ReadStatus::kFrame:
      return "frame";
    case ReadStatus::kClosed:
      return "closed";
    case ReadStatus::kTimeout:
      return "timeout";
  }
  return "?";
}

// One TCP connection to the gateway. Blocking sends; reads wait at most a timeout.
class KafkaClient {
 public:
  explicit KafkaClient(const GatewayBroker& broker, std::string client_id = "gateway-test")
      : KafkaClient(broker.host(), broker.port(), std::move(client_id)) {}
  KafkaClient(const std::string& host, std::uint16_t port, std::string client_id = "gateway-test")
      : client_id_(std::move(client_id)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    REQUIRE(::inet_pton(AF_INET, host.c_str(), &addr.sin_addr) == 1);
    int rc = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    INFO("connect to " << host << ":" << port << ": " << std::strerror(errno));
    REQUIRE(rc == 0);
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  ~KafkaClient() {
    if (fd_ >= 0) ::close(fd_);
  }
  KafkaClient(const KafkaClient&) = delete;
  KafkaClient& operator=(const KafkaClient&) = delete;

  // Writes everything; false once the peer closed the connection (EPIPE, ECONNRESET).
  bool send_bytes(std::string_view bytes) {
    while (!bytes.empty()) {
      ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  // One whole response frame, or kClosed (EOF or reset, also mid-frame), or kTimeout.
  FrameRead read_frame(std::int64_t timeout_ms = 10000) {
    FrameRead out;
    std::int64_t deadline = now_ms() + timeout_ms;
    char size_buf[4];
    ReadStatus s = read_exact(size_buf, 4, deadline);
    if (s != ReadStatus::kFrame) {
      out.status = s;
      return out;
    }
    std::uint32_t be = 0;
    std::memcpy(&be, size_buf, 4);
    auto size = static_cast<std::int32_t>(ntohl(be));
    REQUIRE(size >= 4);
    REQUIRE(size <= 64 * 1024 * 1024);
    out.body.resize(static_cast<std::size_t>(size));
    out.status = read_exact(out.body.data(), out.body.size(), deadline);
    if (out.status != ReadStatus::kFrame) out.body.clear();
    return out;
  }

  // True when the gateway closes the connection within timeout_ms (bytes that arrive first are
  // read and dropped).
  bool wait_closed(std::int64_t timeout_ms = 5000) {
    std::int64_t deadline = now_ms() + timeout_ms;
    char buf[4096];
    for (;;) {
      std::int64_t left = deadline - now_ms();
      if (left <= 0) return false;
      pollfd p{fd_, POLLIN, 0};
      int rc = ::poll(&p, 1, static_cast<int>(left));
      if (rc < 0 && errno == EINTR) continue;
      if (rc <= 0) return false;
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return true;  // EOF or reset
    }
  }

  // A whole request frame (size, header v1 (v2 for ApiVersions v3+), body at `version`).
  template <class Request>
  std::string frame(ApiKey key, std::int16_t version, const Request& req,
                    std::int32_t correlation_id) const {
    kafka::ByteWriter w;
    kafka::RequestHeader h;
    h.api_key = kafka::to_int(key);
    h.api_version = version;
    h.correlation_id = correlation_id;
    h.client_id = client_id_;
    std::size_t at = kafka::begin_request(w, h);
    kafka::encode(w, version, req);
    kafka::end_request(w, at);
    return w.take();
  }

  // Sends a request; returns its correlation id.
  template <class Request>
  std::int32_t send(ApiKey key, std::int16_t version, const Request& req) {
    std::int32_t id = next_correlation_++;
    REQUIRE(send_bytes(frame(key, version, req, id)));
    return id;
  }

  // Reads the next response, which must be a frame with `correlation_id` whose body decodes at
  // `version` with nothing left over.
  template <class Response>
  Reply<Response> receive(std::int16_t version, std::int32_t correlation_id,
                          std::int64_t timeout_ms = 10000) {
    FrameRead f = read_frame(timeout_ms);
    INFO("response to correlation id " << correlation_id << " at version " << version << ": "
                                       << read_status_name(f.status));
    REQUIRE(f.status == ReadStatus::kFrame);
    Reply<Response> reply;
    reply.frame = std::make_unique<std::string>(std::move(f.body));
    kafka::ByteReader r(*reply.frame);
    REQUIRE(kafka::decode_response_header(r, reply.correlation_id));
    REQUIRE(reply.correlation_id == correlation_id);
    bool ok = kafka::decode(r, version, reply.body);
    INFO("decode error: " << (r.error() != nullptr ? r.error() : "none"));
    REQUIRE(ok);
    REQUIRE(r.remaining() == 0);
    return reply;
  }

  template <class Response, class Request>
  Reply<Response> call(ApiKey key, std::int16_t version, const Request& req,
                       std::int64_t timeout_ms = 10000) {
    std::int32_t id = send(key, version, req);
    return receive<Response>(version, id, timeout_ms);
  }

  int fd() const { return fd_; }
  std::int32_t next_correlation_id() const { return next_correlation_; }

 private:
  ReadStatus read_exact(char* dst, std::size_t n, std::int64_t deadline) {
    while (n > 0) {
      std::int64_t left = deadline - now_ms();
      if (left <= 0) return ReadStatus::kTimeout;
      pollfd p{fd_, POLLIN, 0};
      int rc = ::poll(&p, 1, static_cast<int>(left));
      if (rc < 0 && errno == EINTR) continue;
      if (rc < 0) return ReadStatus::kClosed;
      if (rc == 0) return ReadStatus::kTimeout;
      ssize_t got = ::recv(fd_, dst, n, 0);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) return ReadStatus::kClosed;
      dst += got;
      n -= static_cast<std::size_t>(got);
    }
    return ReadStatus::kFrame;
  }

  int fd_ = -1;
  std::string client_id_;
  std::int32_t next_correlation_ = 1;
};

// ---- requests the tests send often --------------------------------------------------------------

// A record to produce or as fetched: keys, values and header values may be null.
struct TestRecord {
  std::optional<std::string> key;
  std::optional<std::string> value;
  std::vector<std::pair<std::string, std::optional<std::string>>> headers;
  std::int64_t timestamp_ms = -1;
  std::int64_t offset = -1;  // as fetched
  friend bool operator==(const TestRecord&, const TestRecord&) = default;
};

inline std::ostream& operator<<(std::ostream& os, const TestRecord& r) {
  os << "{offset " << r.offset << ", ts " << r.timestamp_ms << ", key "
     << (r.key ? "\"" + *r.key + "\"" : std::string("null")) << ", value "
     << (r.value ? "\"" + *r.value + "\"" : std::string("null")) << ", headers [";
  for (const auto& [k, v] : r.headers) os << k << "=" << (v ? *v : std::string("null")) << " ";
  return os << "]}";
}

// One uncompressed magic-2 batch of `records` (offset deltas 0..n-1; each record's own
// timestamp, or base_ts + i when it has none).
inline std::string encode_batch(const std::vector<TestRecord>& records, std::int64_t base_ts,
                                const kafka::BatchOptions& options = {}) {
  kafka::ByteWriter w;
  kafka::BatchEncoder enc;
  enc.begin(w, 0,
            records.empty() || records[0].timestamp_ms < 0 ? base_ts : records[0].timestamp_ms,
            options);
  for (std::size_t i = 0; i < records.size(); ++i) {
    const TestRecord& r = records[i];
    std::vector<kafka::RecordHeaderView> hs;
    for (const auto& [k, v] : r.headers)
      hs.push_back({k, v ? std::optional<std::string_view>(*v) : std::nullopt});
    kafka::RecordOut out;
    out.offset = static_cast<std::int64_t>(i);
    out.timestamp_ms =
        r.timestamp_ms >= 0 ? r.timestamp_ms : base_ts + static_cast<std::int64_t>(i);
    if (r.key) out.key = *r.key;
    if (r.value) out.value = *r.value;
    out.headers = hs;
    REQUIRE(enc.add(out));
  }
  enc.finish();
  return w.take();
}

inline void put_be(std::string& s, std::size_t at, std::uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) {
    s[at + static_cast<std::size_t>(i)] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
}

inline void fix_batch_crc(std::string& batch) {
  std::uint32_t crc = shm::crc32c(batch.data() + kafka::kBatchAttributesOffset,
                                  batch.size() - kafka::kBatchAttributesOffset);
  put_be(batch, kafka::kBatchCrcOffset, crc, 4);
}

// The uncompressed batch `plain` with its records compressed by `codec`.
inline std::string compress_batch(const std::string& plain, kafka::Codec codec,
                                  kafka::SnappyFraming framing = kafka::SnappyFraming::kRaw) {
  std::string out = plain.substr(0, kafka::kBatchHeaderSize);
  auto err =
      kafka::compress(codec, std::string_view(plain).substr(kafka::kBatchHeaderSize), out, framing);
  INFO((err ? err->message : std::string()));
  REQUIRE_FALSE(err.has_value());
  put_be(out, kafka::kBatchLengthOffset, out.size() - kafka::kBatchLogOverhead, 4);
  out[kafka::kBatchAttributesOffset + 1] = static_cast<char>(
      (out[kafka::kBatchAttributesOffset + 1] & ~kafka::kAttrCodecMask) | static_cast<int>(codec));
  fix_batch_crc(out);
  return out;
}

// Every record in a Fetch partition's records field (stored batches, magic 2), with absolute
// offsets and timestamps.
inline std::vector<TestRecord> records_of(const std::optional<std::string_view>& bytes) {
  std::vector<TestRecord> out;
  if (!bytes || bytes->empty()) return out;
  auto decoded = kafka::decode_stored_batches(*bytes, 64 << 20);
  if (const auto* e = std::get_if<kafka::DecodeError>(&decoded))
    FAIL("fetched batches: " << e->message);
  for (const kafka::DecodedBatch& b : std::get<std::vector<kafka::DecodedBatch>>(decoded)) {
    for (const kafka::RecordView& v : b.records) {
      TestRecord r;
      r.offset = b.base_offset + v.offset_delta;
      r.timestamp_ms = v.timestamp_ms;
      if (v.key) r.key = std::string(*v.key);
      if (v.value) r.value = std::string(*v.value);
      for (const auto& h : v.headers)
        r.headers.push_back(
            {std::string(h.key),
             h.value ? std::optional<std::string>(std::string(*h.value)) : std::nullopt});
      out.push_back(std::move(r));
    }
  }
  return out;
}

inline kafka::ProduceRequest produce_request(std::string_view topic, std::int32_t partition,
                                             std::string_view records, std::int16_t acks = -1) {
  kafka::ProduceRequest req;
  req.acks = acks;
  req.timeout_ms = 5000;
  req.topics.push_back({topic, {{partition, records}}});
  return req;
}

// Produce v`version` of `records` to one partition; returns that partition's response.
inline kafka::ProduceResponse::Partition produce(KafkaClient& c, std::string_view topic,
                                                 std::int32_t partition, std::string_view records,
                                                 std::int16_t version = 7) {
  auto reply = c.call<kafka::ProduceResponse>(ApiKey::kProduce, version,
                                              produce_request(topic, partition, records));
  REQUIRE(reply->responses.size() == 1);
  REQUIRE(reply->responses[0].name == topic);
  REQUIRE(reply->responses[0].partitions.size() == 1);
  REQUIRE(reply->responses[0].partitions[0].index == partition);
  auto p = reply->responses[0].partitions[0];
  p.error_message.reset();  // views into the reply
  p.record_errors.clear();
  return p;
}

inline kafka::FetchRequest fetch_request(std::string_view topic, std::int32_t partition,
                                         std::int64_t offset, std::int32_t max_wait_ms = 0,
                                         std::int32_t min_bytes = 1) {
  kafka::FetchRequest req;
  req.max_wait_ms = max_wait_ms;
  req.min_bytes = min_bytes;
  req.max_bytes = 64 << 20;
  kafka::FetchRequest::Partition p;
  p.partition = partition;
  p.fetch_offset = offset;
  p.partition_max_bytes = 16 << 20;
  req.topics.push_back({topic, {p}});
  return req;
}

struct FetchedPartition {
  ErrorCode error = ErrorCode::kNone;
  std::int64_t high_watermark = -1;
  std::int64_t last_stable_offset = -1;
  std::int64_t log_start_offset = -1;
  std::vector<TestRecord> records;
};

inline FetchedPartition fetched_partition(const kafka::FetchResponse& resp, std::string_view topic,
                                          std::int32_t partition) {
  REQUIRE(resp.responses.size() == 1);
  REQUIRE(resp.responses[0].topic == topic);
  REQUIRE(resp.responses[0].partitions.size() == 1);
  const auto& p = resp.responses[0].partitions[0];
  REQUIRE(p.partition_index == partition);
  FetchedPartition out;
  out.error = p.error_code;
  out.high_watermark = p.high_watermark;
  out.last_stable_offset = p.last_stable_offset;
  out.log_start_offset = p.log_start_offset;
  out.records = records_of(p.records);
  return out;
}

// Fetch v`version` from one partition at `offset`.
inline FetchedPartition fetch(KafkaClient& c, std::string_view topic, std::int32_t partition,
                              std::int64_t offset, std::int16_t version = 11,
                              std::int32_t max_wait_ms = 0) {
  auto reply = c.call<kafka::FetchResponse>(ApiKey::kFetch, version,
                                            fetch_request(topic, partition, offset, max_wait_ms));
  return fetched_partition(reply.body, topic, partition);
}

// Every record of a partition from `offset` to its end, fetched in as many requests as it takes.
inline std::vector<TestRecord> fetch_all(KafkaClient& c, std::string_view topic,
                                         std::int32_t partition, std::int64_t offset = 0) {
  std::vector<TestRecord> out;
  for (int round = 0; round < 10000; ++round) {
    FetchedPartition f = fetch(c, topic, partition, offset);
    REQUIRE(f.error == ErrorCode::kNone);
    for (auto& r : f.records) {
      if (r.offset < offset) continue;  // a batch may start before the fetch offset
      offset = r.offset + 1;
      out.push_back(std::move(r));
    }
    if (offset >= f.high_watermark) return out;
    if (f.records.empty())
      FAIL("fetch at " << offset << " returned nothing below hw " << f.high_watermark);
  }
  FAIL("fetch_all did not reach the end");
  return out;
}

// Metadata v`version` for `topics`; the answer for one topic.
inline ErrorCode metadata_topic_error(KafkaClient& c, std::string_view topic,
                                      std::int16_t version = 8) {
  kafka::MetadataRequest req;
  req.topics = std::vector<std::string_view>{topic};
  req.allow_auto_topic_creation = true;
  auto reply = c.call<kafka::MetadataResponse>(ApiKey::kMetadata, version, req);
  REQUIRE(reply->topics.size() == 1);
  REQUIRE(reply->topics[0].name == topic);
  return reply->topics[0].error_code;
}

// ListOffsets v`version` for one partition at `timestamp` (-1 latest, -2 earliest, else ms).
inline kafka::ListOffsetsResponse::Partition list_offset(KafkaClient& c, std::string_view topic,
                                                         std::int32_t partition,
                                                         std::int64_t timestamp,
                                                         std::int16_t version = 5) {
  kafka::ListOffsetsRequest req;
  kafka::ListOffsetsRequest::Partition p;
  p.partition_index = partition;
  p.timestamp = timestamp;
  req.topics.push_back({topic, {p}});
  auto reply = c.call<kafka::ListOffsetsResponse>(ApiKey::kListOffsets, version, req);
  REQUIRE(reply->topics.size() == 1);
  REQUIRE(reply->topics[0].partitions.size() == 1);
  return reply->topics[0].partitions[0];
}

// ---- consumer groups ----------------------------------------------------------------------------

// The consumer-protocol subscription of a member to `topics` (the metadata of a JoinGroup).
inline std::string subscription(const std::vector<std::string>& topics) {
  kafka::ConsumerSubscription s;
  s.topics = topics;
  return kafka::encode_consumer_subscription(s);
}

inline std::string assignment(const std::string& topic, std::vector<std::int32_t> partitions) {
  kafka::ConsumerAssignment a;
  a.assigned_partitions.push_back({topic, std::move(partitions)});
  return kafka::encode_consumer_assignment(a);
}

struct JoinParams {
  std::string group;
  std::string member_id;
  std::string metadata;  // subscription bytes
  std::string protocol = "range";
  std::string protocol_type = "consumer";
  std::int32_t session_timeout_ms = 6000;
  std::int32_t rebalance_timeout_ms = 6000;
};

inline kafka::JoinGroupRequest join_request(const JoinParams& p) {
  kafka::JoinGroupRequest req;
  req.group_id = p.group;
  req.session_timeout_ms = p.session_timeout_ms;
  req.rebalance_timeout_ms = p.rebalance_timeout_ms;
  req.member_id = p.member_id;
  req.protocol_type = p.protocol_type;
  req.protocols.push_back({p.protocol, p.metadata});
  return req;
}

// What a JoinGroup answered, owned.
struct Joined {
  ErrorCode error = ErrorCode::kNone;
  std::int32_t generation = -1;
  std::string protocol;
  std::string leader;
  std::string member_id;
  std::vector<std::pair<std::string, std::string>> members;  // id, metadata
};

inline Joined joined(const kafka::JoinGroupResponse& r) {
  Joined j;
  j.error = r.error_code;
  j.generation = r.generation_id;
  j.protocol = std::string(r.protocol_name);
  j.leader = std::string(r.leader);
  j.member_id = std::string(r.member_id);
  for (const auto& m : r.members)
    j.members.push_back({std::string(m.member_id), std::string(m.metadata)});
  return j;
}

// One JoinGroup round trip at `version`.
inline Joined join_group(KafkaClient& c, const JoinParams& p, std::int16_t version = 5,
                         std::int64_t timeout_ms = 10000) {
  auto reply =
      c.call<kafka::JoinGroupResponse>(ApiKey::kJoinGroup, version, join_request(p), timeout_ms);
  return joined(reply.body);
}

// A member joining with an empty id: at v4+ the first answer is MEMBER_ID_REQUIRED with the
// id to use, then it joins again with that id. Returns the second answer.
inline Joined join_new_member(KafkaClient& c, JoinParams p, std::int16_t version = 5) {
  p.member_id.clear();
  if (version >= 4) {
    Joined first = join_group(c, p, version);
    REQUIRE(first.error == ErrorCode::kMemberIdRequired);
    REQUIRE(!first.member_id.empty());
    p.member_id = first.member_id;
  }
  return join_group(c, p, version);
}

// A local Sluice consumer in `group`, subscribed to `topic`, once it has its first assignment.
inline Consumer join_local_group(const GatewayBroker& broker, const std::string& group,
                                 const std::string& topic,
                                 const std::string& client_id = "sluice") {
  ConsumerConfig cc;
  cc.data_dir = broker.data_dir();
  cc.group_id = group;
  cc.client_id = client_id;
  cc.session_timeout_ms = 6000;
  auto local = must(Consumer::open(cc));
  GT_REQUIRE_OK(local.subscribe({topic}));
  REQUIRE(eventually(
      [&] {
        (void)local.poll([](const Record&) {}, 10, 10);
        return local.group_assignment().generation >= 0;
      },
      5000));
  return local;
}

// A group of one Kafka member, Stable: it joins (subscribed to `topic`) and, as the leader,
// assigns itself `partitions` of it with SyncGroup v3. Returns its JoinGroup answer.
inline Joined form_group_of_one(KafkaClient& c, const std::string& group, const std::string& topic,
                                std::vector<std::int32_t> partitions) {
  JoinParams p;
  p.group = group;
  p.metadata = subscription({topic});
  Joined j = join_new_member(c, p, 5);
  REQUIRE(j.error == ErrorCode::kNone);
  kafka::SyncGroupRequest req;
  req.group_id = group;
  req.generation_id = j.generation;
  req.member_id = j.member_id;
  const std::string assigned = assignment(topic, std::move(partitions));  // outlives req's view
  req.assignments.push_back({j.member_id, assigned});
  REQUIRE(c.call<kafka::SyncGroupResponse>(ApiKey::kSyncGroup, 3, req)->error_code ==
          ErrorCode::kNone);
  return j;
}

inline ErrorCode heartbeat(KafkaClient& c, const std::string& group, const std::string& member,
                           std::int32_t generation, std::int16_t version = 3) {
  kafka::HeartbeatRequest req;
  req.group_id = group;
  req.member_id = member;
  req.generation_id = generation;
  return c.call<kafka::HeartbeatResponse>(ApiKey::kHeartbeat, version, req)->error_code;
}

// A commit of one partition; returns its error.
inline ErrorCode commit_offset(KafkaClient& c, const std::string& group, const std::string& member,
                               std::int32_t generation, const std::string& topic,
                               std::int32_t partition, std::int64_t offset,
                               std::int16_t version = 7) {
  kafka::OffsetCommitRequest req;
  req.group_id = group;
  req.member_id = member;
  req.generation_id = generation;
  kafka::OffsetCommitRequest::Partition p;
  p.partition_index = partition;
  p.committed_offset = offset;
  p.committed_metadata = "m";
  req.topics.push_back({topic, {p}});
  auto reply = c.call<kafka::OffsetCommitResponse>(ApiKey::kOffsetCommit, version, req);
  REQUIRE(reply->topics.size() == 1);
  REQUIRE(reply->topics[0].partitions.size() == 1);
  CHECK(reply->topics[0].partitions[0].partition_index == partition);
  return reply->topics[0].partitions[0].error_code;
}

// The committed offsets of `partitions` (-1 when never committed).
inline std::vector<std::int64_t> fetch_offsets(KafkaClient& c, const std::string& group,
                                               const std::string& topic,
                                               const std::vector<std::int32_t>& partitions,
                                               std::int16_t version = 5) {
  kafka::OffsetFetchRequest req;
  req.group_id = group;
  req.topics = std::vector<kafka::OffsetFetchRequest::Topic>{{topic, partitions}};
  auto reply = c.call<kafka::OffsetFetchResponse>(ApiKey::kOffsetFetch, version, req);
  CHECK(reply->error_code == ErrorCode::kNone);
  REQUIRE(reply->topics.size() == 1);
  CHECK(reply->topics[0].name == topic);
  std::vector<std::int64_t> out;
  for (std::int32_t want : partitions) {
    std::int64_t found = -2;  // not in the answer at all
    for (const auto& p : reply->topics[0].partitions) {
      if (p.partition_index != want) continue;
      CHECK(p.error_code == ErrorCode::kNone);
      found = p.committed_offset;
    }
    out.push_back(found);
  }
  return out;
}

// DescribeConfigs v3 of one resource: its configs, name -> value ("<null>" for null).
inline std::map<std::string, std::string> describe_configs(KafkaClient& c, std::int8_t type,
                                                           const std::string& name,
                                                           ErrorCode expect = ErrorCode::kNone) {
  kafka::DescribeConfigsRequest req;
  req.resources.push_back({type, name, std::nullopt});
  auto reply = c.call<kafka::DescribeConfigsResponse>(ApiKey::kDescribeConfigs, 3, req);
  REQUIRE(reply->results.size() == 1);
  CHECK(reply->results[0].error_code == expect);
  CHECK(reply->results[0].resource_type == type);
  CHECK(reply->results[0].resource_name == name);
  std::map<std::string, std::string> out;
  for (const auto& cfg : reply->results[0].configs)
    out[std::string(cfg.name)] = cfg.value ? std::string(*cfg.value) : std::string("<null>");
  return out;
}

// A fresh connection still gets a correct ApiVersions v2 answer.
inline void check_api_versions(const GatewayBroker& broker) {
  KafkaClient c(broker);
  auto reply =
      c.call<kafka::ApiVersionsResponse>(ApiKey::kApiVersions, 2, kafka::ApiVersionsRequest{});
  CHECK(reply->error_code == ErrorCode::kNone);
  CHECK(reply->api_keys == kafka::api_versions_response().api_keys);
}

}  // namespace sluice::gateway_test
