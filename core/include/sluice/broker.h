// Broker: the lifecycle daemon of a data directory, off the data path. It manages topics,
// keeps a spare segment ready for every partition, applies retention, pads claims abandoned
// by dead producers, coordinates consumer groups and keeps their committed offsets. `sluiced`
// runs one; an application can embed one (like Aeron's embedded media driver).
//
// Producers and consumers keep working while the broker is down or restarting; only group
// rebalances, commits, retention and topic administration wait for it.
//
// Thread-safety: start() and stop() from one thread; the broker runs on its own threads.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>

#include "sluice/status.h"
#include "sluice/types.h"

namespace sluice {

struct BrokerConfig {
  std::string data_dir = default_data_dir();
  mode_t file_mode = 0660;  // every file the broker creates
  std::string file_group;   // group owning them ("" = the broker's own)
  // Spare segments and group timers; also the abandoned-claim watch while no records come
  // (every 10 ms while they do).
  std::int64_t housekeeping_ms = 100;
  std::int64_t retention_check_ms = 1000;
  // Files that processes which died half-way through a change left behind (an interrupted
  // roll's, a topic being created's) are removed at start and at the first retention check
  // this long after the last look.
  std::int64_t orphan_sweep_ms = 60'000;
  std::int64_t abandon_timeout_ms = 1000;   // a claim uncommitted this long is padded
  std::int64_t session_timeout_ms = 10000;  // group members without heartbeat are expelled
  std::int64_t rebalance_timeout_ms = 10000;
  // A group forming from empty waits this long for more members (one rebalance, not N).
  std::int64_t initial_rebalance_delay_ms = 300;
  bool auto_create_topics = false;  // by control clients, and by Kafka Metadata/Produce
  TopicConfig default_topic;        // for auto-created topics

  // The Kafka gateway (docs/kafka-gateway.md): Kafka's wire protocol on TCP, for other
  // hosts and unmodified Kafka clients. "" disables it (the embedded default; sluiced listens
  // on 127.0.0.1:9092 unless told otherwise).
  std::string kafka_listen;        // HOST:PORT; port 0 picks a free one
  std::string kafka_advertise;     // HOST:PORT clients are told to connect to ("": listen)
  std::int32_t kafka_threads = 0;  // connection threads; 0: one per core, at most 8
  std::int32_t kafka_max_request_bytes = 100 * 1024 * 1024;  // larger: rejected, closed
  // Kafka's broker fetch.max.bytes: the most record bytes one Fetch response carries, whatever
  // the client asks for (at least one record is still returned). Smaller than Kafka's 55 MiB
  // because a response is encoded before it is sent: one that stays in the caches is encoded
  // and sent faster (docs/kafka-gateway.md, "Response size").
  std::int32_t kafka_fetch_max_bytes = 512 * 1024;
  std::int32_t kafka_max_connections_per_host = 1000;
  std::int64_t kafka_idle_timeout_ms = 600'000;  // Kafka's connections.max.idle.ms
  std::int32_t kafka_node_id = 0;                // this broker's id in Metadata
};

class Broker {
 public:
  // Takes the data directory's lock (a second broker gets "a broker is already running for
  // DIR (pid N)"), recovers the partitions, and starts serving.
  static Result<std::unique_ptr<Broker>> start(const BrokerConfig& config);
  ~Broker();  // stop()

  void stop();
  // Blocks until stop() is called (from another thread or a signal handler's thread).
  void wait();
  const BrokerConfig& config() const;
  // The Kafka gateway's bound address (HOST:PORT), "" when it is off. With port 0 in
  // kafka_listen, this is where the system put it.
  std::string kafka_address() const;

 private:
  struct Impl;
  explicit Broker(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sluice
