// Producer: appends records to topics by mapping their partition logs directly. No broker on
// the data path: a send is a partition choice plus one lock-free append.
//
//   auto p = sluice::Producer::open({.data_dir = "/dev/shm/sluice"});
//   auto id = p->send("orders", "customer-7", "{...}");      // -> {partition, offset}
//
// Partitioning is Apache Kafka's: with a key, murmur2(key) & 0x7fffffff mod partitions; without
// one, sticky (one partition until batch_records records went to it); an explicit partition
// overrides both.
//
// Thread-safety: one Producer per thread (each holds its own appenders). send_async may be
// called from the owning thread only; its callbacks run on the producer's background thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "sluice/status.h"
#include "sluice/types.h"

namespace sluice {

enum class TimestampSource {
  kWallClock,  // CLOCK_REALTIME per record (nanoseconds; read from the TSC where the kernel does)
  kCoarse,     // the kernel tick's clock (1-4 ms resolution), cheaper
};

struct ProducerConfig {
  std::string data_dir = default_data_dir();
  TimestampSource timestamps = TimestampSource::kWallClock;
  // Keyless records go to one partition until this many were sent to it.
  std::uint32_t batch_records = 64;
  // Under the backpressure slow-reader policy: how long send() waits for consumers before it
  // returns kBackPressured (0: at once).
  std::int64_t backpressure_timeout_ms = 0;
};

// A record reserved in place: write its value, then commit (or abort).
class Reservation {
 public:
  std::span<std::byte> value() const { return value_; }
  RecordId id() const { return id_; }

 private:
  friend class Producer;
  std::span<std::byte> value_;
  RecordId id_;
  void* log_claim_ = nullptr;  // the log's claim, owned by the Producer
  std::uint32_t slot_ = 0;
};

struct ProducerRecord {
  std::string topic;
  std::optional<std::string> key;
  std::optional<std::string> value;
  std::vector<std::pair<std::string, std::optional<std::string>>> headers;
  std::int32_t partition = -1;
  std::int64_t timestamp_ns = -1;
};

class Producer {
 public:
  static Result<Producer> open(const ProducerConfig& config = {});
  Producer(Producer&&) noexcept;
  Producer& operator=(Producer&&) noexcept;
  ~Producer();

  // Appends one record. partition < 0: chosen by key or sticky. timestamp_ns < 0: now.
  Result<RecordId> send(std::string_view topic, std::optional<std::string_view> key,
                        std::optional<std::string_view> value, std::span<const Header> headers = {},
                        std::int32_t partition = -1, std::int64_t timestamp_ns = -1);

  // Zero-copy: reserves room for a value of value_size bytes. Commit or abort it before the
  // next reservation or send on this producer.
  Result<Reservation> claim(std::string_view topic, std::optional<std::string_view> key,
                            std::uint32_t value_size, std::span<const Header> headers = {},
                            std::int32_t partition = -1);
  void commit(Reservation& reservation);
  void abort(Reservation& reservation);

  // Asynchronous: the record is copied and appended by a background thread; the callback
  // (optional) gets the outcome there. flush() waits until every queued record is appended.
  using Callback = std::function<void(const Result<RecordId>&)>;
  void send_async(ProducerRecord record, Callback callback = {});
  Status flush(std::int64_t timeout_ms = -1);

  // Number of partitions of a topic (re-read when the topic grows).
  Result<std::int32_t> partitions(std::string_view topic);

 private:
  struct Impl;
  explicit Producer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sluice
