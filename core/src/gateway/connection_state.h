// ConnectionState: what the gateway keeps per Kafka connection between requests: who the
// peer is, and a reader per partition it fetches from, left where the last fetch ended so
// that a consumer reading on needs no seek.
//
// Thread-safety: used by one request at a time (the connection's), on any gateway thread.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "shm/log_reader.h"
#include "shm/partition_log.h"

namespace sluice::gateway {

struct FetchCursor {
  std::shared_ptr<shm::PartitionLog> log;
  std::optional<shm::LogReader> reader;
  ino_t topic_inode = 0;  // a topic deleted and created again is another log
};

struct ConnectionState {
  std::string peer;  // host:port
  std::string client_id;
  std::map<std::pair<std::string, std::int32_t>, FetchCursor> cursors;

  // Buffers kept between requests so that their memory is reused: a Fetch response can be
  // many megabytes, and a fresh allocation of that size costs a page fault per 4 KiB.
  std::string spare_frame;  // the last response frame, once written
  // Fetch: one per partition. A Fetch response is written straight from them (Outcome::
  // gathered), so they change only when the connection's next request is handled.
  std::vector<std::string> record_buffers;
  // Fetch: the position, in the request's list of partitions, read first. A response is
  // capped (BrokerConfig::kafka_fetch_max_bytes), so the next Fetch starts at the first
  // partition this one had no room for: no partition starves behind busier ones, whether or
  // not the client rotates its list (KIP-74 leaves that to clients; not all do).
  std::size_t fetch_first = 0;

  // A Kafka group member whose JoinGroup or SyncGroup answer is pending on this connection:
  // if the connection closes first, the coordinator forgets the pending answer.
  std::mutex mutex;  // guards waiting_member (the close runs on another thread)
  std::string waiting_member;
  std::atomic<bool> closed{false};  // a waiting Fetch gives up
};

}  // namespace sluice::gateway
