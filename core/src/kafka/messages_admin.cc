// Kafka codec for cluster metadata and administration: Metadata (3), CreateTopics (19),
// DeleteTopics (20), DeleteRecords (21), DescribeLogDirs (35), CreatePartitions (37),
// DescribeConfigs (32), AlterConfigs (33), IncrementalAlterConfigs (44) and InitProducerId (22),
// non-flexible versions (messages.h). Layouts follow Kafka's message schemas of the same names.
#include "kafka/messages.h"
#include "kafka/messages_codec.h"

namespace sluice::kafka {

using codec::Is;
using codec::kMinArray;
using codec::kMinString;

namespace {

// ---------------------------------------------------------------------------------------------
// Metadata

template <typename IO, Is<MetadataRequest> M>
void fields(IO& io, std::int16_t v, M& m) {
  auto topic = [&](auto& name) { io.string(name); };
  if (v >= 1) {
    io.nullable_array(m.topics, kMinString, topic);
  } else if constexpr (IO::kReading) {
    // v0 has no null: an empty array asks for every topic.
    io.array(m.topics.emplace(), kMinString, topic);
    if (m.topics->empty()) m.topics.reset();
  } else {
    static const std::vector<std::string_view> kAll;
    io.array(m.topics ? *m.topics : kAll, kMinString, topic);
  }
  if (v >= 4) io.boolean(m.allow_auto_topic_creation);
  if (v >= 8) {
    io.boolean(m.include_cluster_authorized_operations);
    io.boolean(m.include_topic_authorized_operations);
  }
}

template <typename IO, Is<MetadataResponse> M>
void fields(IO& io, std::int16_t v, M& m) {
  if (v >= 3) io.i32(m.throttle_time_ms);
  io.array(m.brokers, 4 + kMinString + 4, [&](auto& b) {
    io.i32(b.node_id);
    io.string(b.host);
    io.i32(b.port);
    if (v >= 1) io.nullable_string(b.rack);
  });
  if (v >= 2) io.nullable_string(m.cluster_id);
  if (v >= 1) io.i32(m.controller_id);
  io.array(m.topics, 2 + kMinString + kMinArray, [&](auto& t) {
    io.error(t.error_code);
    io.string(t.name);
    if (v >= 1) io.boolean(t.is_internal);
    io.array(t.partitions, 2 + 4 + 4 + 2 * kMinArray, [&](auto& p) {
      io.error(p.error_code);
      io.i32(p.partition_index);
      io.i32(p.leader_id);
      if (v >= 7) io.i32(p.leader_epoch);
      io.array(p.replica_nodes, 4, [&](auto& n) { io.i32(n); });
      io.array(p.isr_nodes, 4, [&](auto& n) { io.i32(n); });
      if (v >= 5) io.array(p.offline_replicas, 4, [&](auto& n) { io.i32(n); });
    });
    if (v >= 8) io.i32(t.topic_authorized_operations);
  });
  if (v >= 8) io.i32(m.cluster_authorized_operations);
}

// ---------------------------------------------------------------------------------------------
// CreateTopics

template <typename IO, Is<CreateTopicsRequest> M>
void fields(IO& io, std::int16_t v, M& m) {
  io.array(m.topics, kMinString + 4 + 2 + 2 * kMinArray, [&](auto& t) {
    io.string(t.name);
    io.i32(t.num_partitions);
    io.i16(t.replication_factor);
    io.array(t.assignments, 4 + kMinArray, [&](auto& a) {
      io.i32(a.partition_index);
      io.array(a.broker_ids, 4, [&](auto& b) { io.i32(b); });
    });
    io.array(t.configs, kMinString + kMinString, [&](auto& c) {
      io.string(c.name);
      io.nullable_string(c.value);
    });
  });
  io.i32(m.timeout_ms);
  if (v >= 1) io.boolean(m.validate_only);
}

template <typename IO, Is<CreateTopicsResponse> M>
void fields(IO& io, std::int16_t v, M& m) {
  if (v >= 2) io.i32(m.throttle_time_ms);
  io.array(m.topics, kMinString + 2, [&](auto& t) {
    io.string(t.name);
    io.error(t.error_code);
    if (v >= 1) io.nullable_string(t.error_message);
  });
}

// ---------------------------------------------------------------------------------------------
// DeleteTopics

template <typename IO, Is<DeleteTopicsRequest> M>
void fields(IO& io, std::int16_t /*v*/, M& m) {
  io.array(m.topic_names, kMinString, [&](auto& name) { io.string(name); });
  io.i32(m.timeout_ms);
}

template <typename IO, Is<DeleteTopicsResponse> M>
void fields(IO& io, std::int16_t v, M& m) {
  if (v >= 1) io.i32(m.throttle_time_ms);
  io.array(m.responses, kMinString + 2, [&](auto& t) {
    io.string(t.name);
    io.error(t.error_code);
  });
}

// ---------------------------------------------------------------------------------------------
// DeleteRecords

template <typename IO, Is<DeleteRecordsRequest> M>
void fields(IO& io, std::int16_t /*v*/, M& m) {
  io.array(m.topics, kMinString + kMinArray, [&](auto& t) {
    io.string(t.name);
    io.array(t.partitions, 4 + 8, [&](auto& p) {
      io.i32(p.partition_index);
      io.i64(p.offset);
    });
  });
  io.i32(m.timeout_ms);
}

template <typename IO, Is<DeleteRecordsResponse> M>
void fields(IO& io, std::int16_t /*v*/, M& m) {
  io.i32(m.throttle_time_ms);
  io.array(m.topics, kMinString + kMinArray, [&](auto& t) {
    io.string(t.name);
    io.array(t.partitions, 4 + 8 + 2, [&](auto& p) {
      io.i32(p.partition_index);
      io.i64(p.low_watermark);
      io.error(p.error_code);
    });
  });
}

// ---------------------------------------------------------------------------------------------
// DescribeLogDirs

template <typename IO, Is<DescribeLogDirsRequest> M>
void fields(IO& io, std::int16_t /*v*/, M& m) {
  io.nullable_array(m.topics, kMinString + kMinArray, [&](auto& t) {
    io.string(t.name);
    io.array(t.partitions, 4, [&](auto& p) { io.i32(p); });
  });
}

template <typename IO, Is<DescribeLogDirsResponse> M>
void fields(IO& io, std::int16_t /*v*/, M& m) {
  io.i32(m.throttle_time_ms);
  io.array(m.results, 2 + kMinString + kMinArray, [&](auto& r) {
    io.error(r.error_code);
    io.string(r.log_dir);
    io.array(r.topics, kMinString + kMinArray, [&](auto& t) {
      io.string(t.name);
      io.array(t.partitions, 4 + 8 + 8 + 1, [&](auto& p) {
        io.i32(p.partition_index);
        io.i64(p.partition_size);
        io.i64(p.offset_lag);
        io.boolean(p.is_future_key);
      });
    });
  });
}

// ---------------------------------------------------------------------------------------------
// CreatePartitions

template <typename IO, Is<CreatePartitionsRequest> M>
void fields(IO& io, std::int16_t /*v*/, M& m) {
  io.array(m.topics, kMinString + 4 + kMinArray, [&](auto& t) {
    io.string(t.name);
    io.i32(t.count);
    io.nullable_array(t.assignments, kMinArray,
                      [&](auto& replicas) { io.array(replicas, 4, [&](auto& b) { io.i32(b); }); });
  });
  io.i32(m.timeout_ms);
  io.boolean(m.validate_only);
}

template <typename IO, Is<CreatePartitionsResponse> M>
void fields(IO& io, std::int16_t /*v*/, M& m) {
  io.i32(m.throttle_time_ms);
  io.array(m.results, kMinString + 2 + kMinString, [&](auto& r) {
    io.string(r.name);
    io.error(r.error_code);
    io.nullable_string(r.error_message);
  });
}

// ---------------------------------------------------------------------------------------------
// DescribeConfigs

template <typename IO, Is<DescribeConfigsRequest> M>
void fields(IO& io, std::int16_t v, M& m) {
  io.array(m.resources, 1 + kMinString + kMinArray, [&](auto& r) {
    io.i8(r.resource_type);
    io.string(r.resource_name);
    io.nullable_array(r.configuration_keys, kMinString, [&](auto& k) { io.string(k); });
  });
  if (v >= 1) io.boolean(m.include_synonyms);
  if (v >= 3) io.boolean(m.include_documentation);
}

template <typename IO, Is<DescribeConfigsResponse> M>
void fields(IO& io, std::int16_t v, M& m) {
  io.i32(m.throttle_time_ms);
  io.array(m.results, 2 + kMinString + 1 + kMinString + kMinArray, [&](auto& r) {
    io.error(r.error_code);
    io.nullable_string(r.error_message);
    io.i8(r.resource_type);
    io.string(r.resource_name);
    io.array(r.configs, kMinString + kMinString + 1 + 1 + 1, [&](auto& c) {
      io.string(c.name);
      io.nullable_string(c.value);
      io.boolean(c.read_only);
      if (v == 0) io.boolean(c.is_default);
      if (v >= 1) io.i8(c.config_source);
      io.boolean(c.is_sensitive);
      if (v >= 1) {
        io.array(c.synonyms, kMinString + kMinString + 1, [&](auto& s) {
          io.string(s.name);
          io.nullable_string(s.value);
          io.i8(s.source);
        });
      }
      if (v >= 3) {
        io.i8(c.config_type);
        io.nullable_string(c.documentation);
      }
    });
  });
}

// ---------------------------------------------------------------------------------------------
// AlterConfigs, IncrementalAlterConfigs

template <typename IO, typename M>
requires Is<M, AlterConfigsRequest> || Is<M, IncrementalAlterConfigsRequest>
void fields(IO& io, std::int16_t /*v*/, M& m) {
  constexpr bool kIncremental = Is<M, IncrementalAlterConfigsRequest>;
  io.array(m.resources, 1 + kMinString + kMinArray, [&](auto& r) {
    io.i8(r.resource_type);
    io.string(r.resource_name);
    io.array(r.configs, kMinString + (kIncremental ? 1 : 0) + kMinString, [&](auto& c) {
      io.string(c.name);
      if constexpr (kIncremental) io.i8(c.config_operation);
      io.nullable_string(c.value);
    });
  });
  io.boolean(m.validate_only);
}

template <typename IO, Is<AlterConfigsResponse> M>
void fields(IO& io, std::int16_t /*v*/, M& m) {
  io.i32(m.throttle_time_ms);
  io.array(m.responses, 2 + kMinString + 1 + kMinString, [&](auto& r) {
    io.error(r.error_code);
    io.nullable_string(r.error_message);
    io.i8(r.resource_type);
    io.string(r.resource_name);
  });
}

// ---------------------------------------------------------------------------------------------
// InitProducerId

template <typename IO, Is<InitProducerIdRequest> M>
void fields(IO& io, std::int16_t /*v*/, M& m) {
  io.nullable_string(m.transactional_id);
  io.i32(m.transaction_timeout_ms);
}

template <typename IO, Is<InitProducerIdResponse> M>
void fields(IO& io, std::int16_t /*v*/, M& m) {
  io.i32(m.throttle_time_ms);
  io.error(m.error_code);
  io.i64(m.producer_id);
  io.i16(m.producer_epoch);
}

}  // namespace

SLUICE_KAFKA_CODEC(MetadataRequest)
SLUICE_KAFKA_CODEC(MetadataResponse)
SLUICE_KAFKA_CODEC(CreateTopicsRequest)
SLUICE_KAFKA_CODEC(CreateTopicsResponse)
SLUICE_KAFKA_CODEC(DeleteTopicsRequest)
SLUICE_KAFKA_CODEC(DeleteTopicsResponse)
SLUICE_KAFKA_CODEC(DeleteRecordsRequest)
SLUICE_KAFKA_CODEC(DeleteRecordsResponse)
SLUICE_KAFKA_CODEC(DescribeLogDirsRequest)
SLUICE_KAFKA_CODEC(DescribeLogDirsResponse)
SLUICE_KAFKA_CODEC(CreatePartitionsRequest)
SLUICE_KAFKA_CODEC(CreatePartitionsResponse)
SLUICE_KAFKA_CODEC(DescribeConfigsRequest)
SLUICE_KAFKA_CODEC(DescribeConfigsResponse)
SLUICE_KAFKA_CODEC(AlterConfigsRequest)
SLUICE_KAFKA_CODEC(IncrementalAlterConfigsRequest)
SLUICE_KAFKA_CODEC(AlterConfigsResponse)
SLUICE_KAFKA_CODEC(InitProducerIdRequest)
SLUICE_KAFKA_CODEC(InitProducerIdResponse)

}  // namespace sluice::kafka
