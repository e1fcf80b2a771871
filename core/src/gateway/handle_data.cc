// RequestHandler: Produce, Fetch (with its long poll), ListOffsets and DeleteRecords.
#include <spdlog/spdlog.h>
#include <boost/asio/strand.hpp>

#include <chrono>
#include <deque>
#include <optional>

#include "record_path.h"
#include "request_handler.h"
#include "shm/clock.h"

namespace sluice::gateway {

using kafka::ByteReader;
using kafka::ErrorCode;

namespace {

std::int64_t now_ms() {
  return shm::monotonic_ns() / 1'000'000;
}

// Decompressed batches may not exceed this many times the request limit.
constexpr std::size_t kDecompressionFactor = 4;

}  // namespace

// ---- Produce ----------------------------------------------------------------------------------

void RequestHandler::produce(ConnectionState&, const Header& h, ByteReader& r, Respond respond) {
  auto req = std::make_shared<kafka::ProduceRequest>();
  if (!kafka::decode(r, h.api_version, *req)) return respond(malformed_request("Produce", r));
  std::vector<std::string> missing;
  if (config_.auto_create_topics) {
    for (const auto& t : req->topics) {
      std::string name(t.name);
      if (validate_topic_name(name) && !directory_.topic(name)) missing.push_back(name);
    }
  }
  if (missing.empty()) return produce_now(h, *req, respond);
  for (const auto& n : missing) directory_.forget(n);
  auto hdr = std::make_shared<Header>(h);
  auto_create(std::move(missing), [this, hdr, req, respond] { produce_now(*hdr, *req, respond); });
}

void RequestHandler::produce_now(const Header& h, const kafka::ProduceRequest& req,
                                 const Respond& respond) {
  std::deque<std::string> messages;  // owns the error messages the response views
  kafka::ProduceResponse resp;
  bool appended = false;
  const bool acks_valid = req.acks == 0 || req.acks == 1 || req.acks == -1;
  const std::size_t max_decompressed =
      static_cast<std::size_t>(config_.kafka_max_request_bytes) * kDecompressionFactor;
  for (const auto& t : req.topics) {
    kafka::ProduceResponse::Topic rt;
    rt.name = t.name;
    std::string name(t.name);
    auto topic = directory_.topic(name);
    for (const auto& p : t.partitions) {
      kafka::ProduceResponse::Partition rp;
      rp.index = p.index;
      rp.base_offset = -1;
      auto fail = [&](ErrorCode e, std::string why) {
        rp.error_code = e;
        messages.push_back(std::move(why));
        rp.error_message = messages.back();
      };
      if (!acks_valid) {
        fail(ErrorCode::kInvalidRequiredAcks, "acks must be 0, 1 or -1");
      } else if (req.transactional_id) {
        fail(ErrorCode::kTransactionalIdAuthorizationFailed,
             "transactions are not supported by the Sluice gateway");
      } else if (!topic) {
        fail(kafka_error_for(topic.status()), topic.status().message());
      } else if (p.index < 0 || p.index >= (*topic)->config.partitions) {
        fail(ErrorCode::kUnknownTopicOrPartition,
             "topic " + name + " has no partition " + std::to_string(p.index));
      } else if (!p.records) {
        fail(ErrorCode::kInvalidRecord, "null records");
      } else {
        AppendOutcome out =
            append_records(directory_, *topic, p.index, *p.records, max_decompressed);
        if (out.error != ErrorCode::kNone) {
          spdlog::debug("kafka gateway: produce to {}-{}: {}", name, p.index, out.message);
          fail(out.error, std::move(out.message));
        } else {
          rp.base_offset = out.base_offset;
          rp.log_start_offset = out.log_start_offset;
          appended = true;
        }
      }
      rt.partitions.push_back(std::move(rp));
    }
    resp.responses.push_back(std::move(rt));
  }
  if (appended) wake_fetchers();
  if (req.acks == 0) {
    // No response at all. On an error Kafka closes the connection instead, so that the
    // client notices and refreshes its metadata.
    for (const auto& t : resp.responses)
      for (const auto& p : t.partitions)
        if (p.error_code != ErrorCode::kNone)
          return respond({{},
                          true,
                          "acks=0 produce to " + std::string(t.name) + "-" +
                              std::to_string(p.index) +
                              " failed: " + std::string(p.error_message.value_or(""))});
    return respond({});
  }
  respond({response_frame(h, resp), false, {}});
}

// ---- Fetch ------------------------------------------------------------------------------------

struct RequestHandler::FetchJob {
  Header header;
  kafka::FetchRequest req;
  ConnectionState* connection = nullptr;
  Respond respond;
  std::int64_t deadline_ms = 0;
  std::shared_ptr<boost::asio::steady_timer> timer;
  bool first = true;
};

void RequestHandler::fetch(ConnectionState& connection, const Header& h, ByteReader& r,
                           Respond respond) {
  auto job = std::make_shared<FetchJob>();
  if (!kafka::decode(r, h.api_version, job->req)) return respond(malformed_request("Fetch", r));
  job->header = h;
  job->connection = &connection;
  job->respond = std::move(respond);
  job->deadline_ms = now_ms() + std::max(job->req.max_wait_ms, 0);
  fetch_attempt(job);
}

void RequestHandler::fetch_attempt(const std::shared_ptr<FetchJob>& job) {
  const kafka::FetchRequest& req = job->req;
  // When nothing came last time, look before re-encoding: any partition with a record ready?
  if (!job->first && !stopping_ && !job->connection->closed && now_ms() < job->deadline_ms) {
    bool any = false;
    for (const auto& t : req.topics)
      for (const auto& p : t.partitions) {
        auto it = job->connection->cursors.find({std::string(t.topic), p.partition});
        if (it == job->connection->cursors.end() || !it->second.reader ||
            it->second.reader->ready() || !it->second.reader->segment_current())
          any = true;
      }
    if (!any) return fetch_wait(job);
  }
  job->first = false;

  // The request's partitions in one list, in request order; the response keeps that order.
  struct Wanted {
    const kafka::FetchRequest::Partition* request;
    std::size_t topic;  // index into req.topics and resp.responses
    kafka::FetchResponse::Partition* response = nullptr;
  };
  std::vector<Wanted> wanted;
  kafka::FetchResponse resp;
  resp.session_id = 0;
  std::vector<Result<std::shared_ptr<TopicEntry>>> topics;
  for (std::size_t ti = 0; ti < req.topics.size(); ++ti) {
    const auto& t = req.topics[ti];
    topics.push_back(directory_.topic(std::string(t.topic)));
    kafka::FetchResponse::Topic rt;
    rt.topic = t.topic;
    rt.partitions.resize(t.partitions.size());
    resp.responses.push_back(std::move(rt));
    for (const auto& p : t.partitions) wanted.push_back({&p, ti});
  }
  for (std::size_t ti = 0, k = 0; ti < resp.responses.size(); ++ti)
    for (auto& rp : resp.responses[ti].partitions) wanted[k++].response = &rp;

  // The records of each partition, in buffers the connection keeps (their memory is reused).
  // Sized first: the response holds views into them, so the vector must not grow later.
  std::vector<std::string>& buffers = job->connection->record_buffers;
  if (buffers.size() < wanted.size()) buffers.resize(wanted.size());
  // Read from fetch_first on, wrapping around (see ConnectionState::fetch_first).
  const std::int64_t cap = std::min<std::int64_t>(req.max_bytes, config_.kafka_fetch_max_bytes);
  std::size_t first = wanted.empty() ? 0 : job->connection->fetch_first % wanted.size();
  std::optional<std::size_t> first_without_room;
  std::int64_t total = 0;
  bool error = false;
  for (std::size_t i = 0; i < wanted.size(); ++i) {
    const std::size_t k = (first + i) % wanted.size();
    const kafka::FetchRequest::Partition& p = *wanted[k].request;
    auto& topic = topics[wanted[k].topic];
    kafka::FetchResponse::Partition& rp = *wanted[k].response;
    rp.partition_index = p.partition;
    rp.aborted_transactions.reset();
    if (!topic) {
      rp.error_code = kafka_error_for(topic.status());
    } else if (p.partition < 0 || p.partition >= (*topic)->config.partitions) {
      rp.error_code = ErrorCode::kUnknownTopicOrPartition;
    } else {
      std::string& buf = buffers[k];
      buf.clear();
      std::int64_t room = cap - total;
      std::int32_t limit = p.partition_max_bytes;
      if (room < limit) limit = static_cast<std::int32_t>(std::max<std::int64_t>(room, 0));
      if (limit > 0 || total == 0) {
        ReadOutcome out = read_records(directory_, *job->connection, *topic, p.partition,
                                       p.fetch_offset, std::max(limit, 1), buf);
        rp.error_code = out.error;
        rp.high_watermark = out.high_watermark;
        rp.last_stable_offset = out.high_watermark;
        rp.log_start_offset = out.log_start_offset;
        if (out.error != ErrorCode::kNone)
          spdlog::debug("kafka gateway: fetch {}-{} at {}: {}", req.topics[wanted[k].topic].topic,
                        p.partition, p.fetch_offset, out.message);
      } else {
        // No room left in this response: only the partition's marks, from the log's tail
        // word and the cached segment base (no reader, no directory listing).
        if (!first_without_room) first_without_room = k;
        auto log = directory_.log(*topic, p.partition);
        rp.high_watermark = log ? (*log)->end_offset() : -1;
        rp.last_stable_offset = rp.high_watermark;
        rp.log_start_offset = directory_.log_start(*topic, p.partition);
      }
      total += static_cast<std::int64_t>(buf.size());
      rp.records = buf;
    }
    if (rp.error_code != ErrorCode::kNone) error = true;
  }
  if (first_without_room) job->connection->fetch_first = *first_without_room;
  bool done = error || total >= std::max(req.min_bytes, 1) || now_ms() >= job->deadline_ms ||
              stopping_ || job->connection->closed;
  if (done) {
    if (job->timer) {
      std::lock_guard<std::mutex> lock(waiting_mutex_);
      waiting_.erase(job->timer);
    }
    // The records stay in the connection's buffers until the response is written.
    job->respond(gathered_response(job->header, resp, std::move(job->connection->spare_frame)));
    return;
  }
  // Wait: a gateway produce cancels the timer at once; local producers' records are seen at
  // the next check. Never past the deadline.
  // The timer lives on a strand of its own: its waits and the cancels of wake_fetchers() run
  // one at a time there (this first attempt runs on the connection's strand, so it hands over).
  if (!job->timer) {
    job->timer = std::make_shared<boost::asio::steady_timer>(boost::asio::make_strand(io_));
    {
      std::lock_guard<std::mutex> lock(waiting_mutex_);
      waiting_.insert(job->timer);
    }
    boost::asio::post(job->timer->get_executor(), [this, job] { fetch_wait(job); });
    return;
  }
  fetch_wait(job);
}

void RequestHandler::fetch_wait(const std::shared_ptr<FetchJob>& job) {
  job->timer->expires_after(std::chrono::milliseconds(1));
  job->timer->async_wait([this, job](const boost::system::error_code&) { fetch_attempt(job); });
}

// ---- ListOffsets ------------------------------------------------------------------------------

void RequestHandler::list_offsets(ConnectionState&, const Header& h, ByteReader& r,
                                  Respond respond) {
  kafka::ListOffsetsRequest req;
  if (!kafka::decode(r, h.api_version, req)) return respond(malformed_request("ListOffsets", r));
  kafka::ListOffsetsResponse resp;
  for (const auto& t : req.topics) {
    kafka::ListOffsetsResponse::Topic rt;
    rt.name = t.name;
    auto topic = directory_.topic(std::string(t.name));
    for (const auto& p : t.partitions) {
      kafka::ListOffsetsResponse::Partition rp;
      rp.partition_index = p.partition_index;
      if (!topic) {
        rp.error_code = kafka_error_for(topic.status());
      } else if (p.partition_index < 0 || p.partition_index >= (*topic)->config.partitions) {
        rp.error_code = ErrorCode::kUnknownTopicOrPartition;
      } else if (p.timestamp == -1 || p.timestamp == -2) {
        OffsetRange range = offset_range(directory_, *topic, p.partition_index);
        rp.error_code = range.error;
        rp.offset = p.timestamp == -1 ? range.end : range.start;
        rp.timestamp = -1;
        rp.leader_epoch = 0;
      } else {
        TimestampLookup found = offset_for_time(directory_, *topic, p.partition_index, p.timestamp);
        rp.error_code = found.error;
        rp.offset = found.offset;
        rp.timestamp = found.timestamp_ms;
        rp.leader_epoch = 0;
      }
      if (h.api_version == 0 && rp.error_code == ErrorCode::kNone && rp.offset >= 0 &&
          p.max_num_offsets > 0)
        rp.old_style_offsets = {rp.offset};
      rt.partitions.push_back(std::move(rp));
    }
    resp.topics.push_back(std::move(rt));
  }
  respond({response_frame(h, resp), false, {}});
}

// ---- DeleteRecords ----------------------------------------------------------------------------

void RequestHandler::delete_records(ConnectionState&, const Header& h, ByteReader& r,
                                    Respond respond) {
  kafka::DeleteRecordsRequest req;
  if (!kafka::decode(r, h.api_version, req)) return respond(malformed_request("DeleteRecords", r));
  kafka::DeleteRecordsResponse resp;
  for (const auto& t : req.topics) {
    kafka::DeleteRecordsResponse::Topic rt;
    rt.name = t.name;
    auto topic = directory_.topic(std::string(t.name));
    for (const auto& p : t.partitions) {
      kafka::DeleteRecordsResponse::Partition rp;
      rp.partition_index = p.partition_index;
      if (!topic) {
        rp.error_code = kafka_error_for(topic.status());
      } else if (p.partition_index < 0 || p.partition_index >= (*topic)->config.partitions) {
        rp.error_code = ErrorCode::kUnknownTopicOrPartition;
      } else if (p.offset < -1) {
        rp.error_code = ErrorCode::kOffsetOutOfRange;
      } else if (auto log = directory_.log(*topic, p.partition_index); !log) {
        rp.error_code = kafka_error_for(log.status());
      } else {
        // -1: everything up to the high watermark, as Kafka reads it.
        std::int64_t before = p.offset == -1 ? (*log)->end_offset() : p.offset;
        auto start = (*log)->delete_records_before(before);
        if (start) {
          rp.low_watermark = *start;
          spdlog::info("kafka gateway: deleted records of {}/{} before offset {}", t.name,
                       p.partition_index, *start);
        } else {
          rp.error_code = kafka_error_for(start.status());  // kOutOfRange: past the end
        }
      }
      rt.partitions.push_back(rp);
    }
    resp.topics.push_back(std::move(rt));
  }
  respond({response_frame(h, resp), false, {}});
}

}  // namespace sluice::gateway
