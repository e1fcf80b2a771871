// RequestHandler: answers the Kafka requests of every gateway connection. Decodes the header,
// refuses what it does not serve (an unknown API key or version closes the connection, as
// Kafka does; ApiVersions v3+ gets the v0-format UNSUPPORTED_VERSION reply), decodes the body
// (a malformed one closes the connection with the decoder's reason in the log), and answers:
//
//   ApiVersions, Metadata, FindCoordinator,            request_handler.cc, handle_admin.cc
//   CreateTopics, DeleteTopics, CreatePartitions,
//   DescribeConfigs, DescribeLogDirs,
//   AlterConfigs, IncrementalAlterConfigs             handle_alter_configs.cc
//   InitProducerId
//   Produce, Fetch (long poll), ListOffsets,           handle_data.cc, record_path.cc
//   DeleteRecords
//   JoinGroup, SyncGroup, Heartbeat, LeaveGroup,       handle_groups.cc -> the broker's
//   OffsetCommit, OffsetFetch                          KafkaGroupService
//   ListGroups, DescribeGroups, DeleteGroups,          handle_group_admin.cc -> the broker's
//   OffsetDelete
//                                                      GroupService (every kind of group)
//
// Produce and Fetch touch the partition logs directly from the gateway's threads; topic
// changes and group requests run on the broker's thread (BrokerLink).
//
// Thread-safety: handle() runs for one request of a connection at a time, on any gateway
// thread; different connections' requests run in parallel.
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <utility>

#include "broker_link.h"
#include "connection.h"
#include "connection_state.h"
#include "data_dir.h"
#include "kafka/messages.h"
#include "partition_directory.h"
#include "sluice/broker.h"

namespace sluice::gateway {

class RequestHandler {
 public:
  RequestHandler(const BrokerConfig& config, DataDir dir, BrokerLink& broker,
                 boost::asio::io_context& io);

  // `bound`: the listening address, advertised unless config.kafka_advertise says otherwise.
  Status start(const std::string& bound);
  void stop();
  const std::string& advertised() const { return advertised_; }

  // `frame`: the request (header and body, without its size); valid until respond() is called.
  void handle(ConnectionState& connection, std::string_view frame, Respond respond);
  void connection_closed(ConnectionState& connection);

 private:
  using Header = kafka::RequestHeader;

  // One handler per API, each answering through `respond` exactly once.
  void api_versions(ConnectionState&, const Header&, kafka::ByteReader&, Respond);
  void metadata(ConnectionState&, const Header&, kafka::ByteReader&, Respond);
  void find_coordinator(ConnectionState&, const Header&, kafka::ByteReader&, Respond);
  void create_topics(ConnectionState&, const Header&, kafka::ByteReader&, Respond);
  void delete_topics(ConnectionState&, const Header&, kafka::ByteReader&, Respond);
  void create_partitions(ConnectionState&, const Header&, kafka::ByteReader&, Respond);
  void describe_log_dirs(ConnectionState&, const Header&, kafka::ByteReader&, Respond);
  // AlterConfigs and IncrementalAlterConfigs (by the header's API key).
  void alter_configs(ConnectionState&, const Header&, kafka::ByteReader&, Respond);
  void describe_configs(ConnectionState&, const Header&, kafka::ByteReader&, Respond);
  void init_producer_id(ConnectionState&, const Header&, kafka::ByteReader&, Respond);
  void produce(ConnectionState&, const Header&, kafka::ByteReader&, Respond);
  void fetch(ConnectionState&, const Header&, kafka::ByteReader&, Respond);
  void list_offsets(ConnectionState&, const Header&, kafka::ByteReader&, Respond);
  void delete_records(ConnectionState&, const Header&, kafka::ByteReader&, Respond);
  void join_group(ConnectionState&, const Header&, kafka::ByteReader&, Respond);
  void sync_group(ConnectionState&, const Header&, kafka::ByteReader&, Respond);
  void heartbeat(ConnectionState&, const Header&, kafka::ByteReader&, Respond);
  void leave_group(ConnectionState&, const Header&, kafka::ByteReader&, Respond);
  void offset_commit(ConnectionState&, const Header&, kafka::ByteReader&, Respond);
  void offset_fetch(ConnectionState&, const Header&, kafka::ByteReader&, Respond);
  void list_groups(ConnectionState&, const Header&, kafka::ByteReader&, Respond);
  void describe_groups(ConnectionState&, const Header&, kafka::ByteReader&, Respond);
  void delete_groups(ConnectionState&, const Header&, kafka::ByteReader&, Respond);
  void offset_delete(ConnectionState&, const Header&, kafka::ByteReader&, Respond);

  // Produce: after topics were (auto-)created if need be.
  void produce_now(const Header& h, const kafka::ProduceRequest& req, const Respond& respond);
  // Metadata: after topics were (auto-)created if need be.
  void metadata_now(const Header& h, const kafka::MetadataRequest& req, const Respond& respond);
  // Creates the missing topics among `names` on the broker's thread (auto-creation), then
  // calls `then` on a gateway thread.
  void auto_create(std::vector<std::string> names, std::function<void()> then);

  struct FetchJob;
  void fetch_attempt(const std::shared_ptr<FetchJob>& job);
  void fetch_wait(const std::shared_ptr<FetchJob>& job);  // on the job's timer strand
  void wake_fetchers();

  BrokerConfig config_;
  PartitionDirectory directory_;
  BrokerLink& broker_;
  boost::asio::io_context& io_;
  std::string advertised_;
  std::string advertised_host_;
  std::int32_t advertised_port_ = 0;
  std::string cluster_id_;
  std::atomic<std::int64_t> next_producer_id_{0};

  // Fetches waiting for data (long poll): a gateway produce wakes them at once; records from
  // local producers are noticed by their timer's next check.
  std::mutex waiting_mutex_;
  std::set<std::shared_ptr<boost::asio::steady_timer>> waiting_;
  std::atomic<bool> stopping_{false};
};

// The answer to one item of a batched admin request (a topic of CreateTopics, a resource of
// AlterConfigs): the first error found stands, with its message.
struct ItemError {
  kafka::ErrorCode error = kafka::ErrorCode::kNone;
  std::string message;
  void fail(kafka::ErrorCode e, std::string m) {
    if (error != kafka::ErrorCode::kNone) return;
    error = e;
    message = std::move(m);
  }
};

// A whole response frame: size, correlation id, the body at the request's version.
// "close the connection: malformed <API> request: <the decoder's reason>".
inline Outcome malformed_request(const char* api, const kafka::ByteReader& r) {
  return {{}, true, std::string("malformed ") + api + " request: " + r.error()};
}

// `buffer`: memory to reuse (its contents are dropped).
template <class Response>
std::string response_frame(const kafka::RequestHeader& h, const Response& r,
                           std::string buffer = {}) {
  buffer.clear();
  kafka::ByteWriter w(std::move(buffer));
  std::size_t at = kafka::begin_response(w, h.correlation_id);
  kafka::encode(w, h.api_version, r);
  kafka::end_response(w, at);
  return w.take();
}

// A Fetch response whose record batches (views into `connection.record_buffers`) are sent
// from those buffers rather than copied into the frame (kafka::encode_gathered).
inline Outcome gathered_response(const kafka::RequestHeader& h, const kafka::FetchResponse& r,
                                 std::string buffer = {}) {
  buffer.clear();
  Outcome out;
  kafka::ByteWriter w(std::move(buffer));
  std::size_t at = kafka::begin_response(w, h.correlation_id);
  kafka::encode_gathered(w, h.api_version, r, out.gathered);
  std::size_t gathered_bytes = 0;
  for (const kafka::GatheredBytes& g : out.gathered) gathered_bytes += g.bytes.size();
  kafka::end_response(w, at, gathered_bytes);
  out.frame = w.take();
  return out;
}

}  // namespace sluice::gateway
