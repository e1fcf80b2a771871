// Kafka codec for the data path: Produce (0), Fetch (1) and ListOffsets (2), non-flexible
// versions (messages.h). Layouts follow Kafka's ProduceRequest/Response, FetchRequest/Response
// and ListOffsetsRequest/Response message schemas.
#include "kafka/messages.h"
#include "kafka/messages_codec.h"

namespace sluice::kafka {

using codec::Is;
using codec::kMinArray;
using codec::kMinBytes;
using codec::kMinString;

namespace {

// ---------------------------------------------------------------------------------------------
// Produce

template <typename IO, Is<ProduceRequest> M>
void fields(IO& io, std::int16_t v, M& m) {
  if (v >= 3) io.nullable_string(m.transactional_id);
  io.i16(m.acks);
  io.i32(m.timeout_ms);
  io.array(m.topics, kMinString + kMinArray, [&](auto& t) {
    io.string(t.name);
    io.array(t.partitions, 4 + kMinBytes, [&](auto& p) {
      io.i32(p.index);
      io.nullable_bytes(p.records);
    });
  });
}

template <typename IO, Is<ProduceResponse> M>
void fields(IO& io, std::int16_t v, M& m) {
  io.array(m.responses, kMinString + kMinArray, [&](auto& t) {
    io.string(t.name);
    io.array(t.partitions, 4 + 2 + 8, [&](auto& p) {
      io.i32(p.index);
      io.error(p.error_code);
      io.i64(p.base_offset);
      if (v >= 2) io.i64(p.log_append_time_ms);
      if (v >= 5) io.i64(p.log_start_offset);
      if (v >= 8) {
        io.array(p.record_errors, 4 + kMinString, [&](auto& e) {
          io.i32(e.batch_index);
          io.nullable_string(e.batch_index_error_message);
        });
        io.nullable_string(p.error_message);
      }
    });
  });
  if (v >= 1) io.i32(m.throttle_time_ms);
}

// ---------------------------------------------------------------------------------------------
// Fetch

template <typename IO, Is<FetchRequest> M>
void fields(IO& io, std::int16_t v, M& m) {
  io.i32(m.replica_id);
  io.i32(m.max_wait_ms);
  io.i32(m.min_bytes);
  if (v >= 3) io.i32(m.max_bytes);
  if (v >= 4) io.i8(m.isolation_level);
  if (v >= 7) {
    io.i32(m.session_id);
    io.i32(m.session_epoch);
  }
  io.array(m.topics, kMinString + kMinArray, [&](auto& t) {
    io.string(t.topic);
    io.array(t.partitions, 4 + 8 + 4, [&](auto& p) {
      io.i32(p.partition);
      if (v >= 9) io.i32(p.current_leader_epoch);
      io.i64(p.fetch_offset);
      if (v >= 5) io.i64(p.log_start_offset);
      io.i32(p.partition_max_bytes);
    });
  });
  if (v >= 7) {
    io.array(m.forgotten_topics_data, kMinString + kMinArray, [&](auto& t) {
      io.string(t.topic);
      io.array(t.partitions, 4, [&](auto& p) { io.i32(p); });
    });
  }
  if (v >= 11) io.string(m.rack_id);
}

template <typename IO, Is<FetchResponse> M>
void fields(IO& io, std::int16_t v, M& m) {
  if (v >= 1) io.i32(m.throttle_time_ms);
  if (v >= 7) {
    io.error(m.error_code);
    io.i32(m.session_id);
  }
  io.array(m.responses, kMinString + kMinArray, [&](auto& t) {
    io.string(t.topic);
    io.array(t.partitions, 4 + 2 + 8 + kMinBytes, [&](auto& p) {
      io.i32(p.partition_index);
      io.error(p.error_code);
      io.i64(p.high_watermark);
      if (v >= 4) io.i64(p.last_stable_offset);
      if (v >= 5) io.i64(p.log_start_offset);
      if (v >= 4) {
        io.nullable_array(p.aborted_transactions, 16, [&](auto& a) {
          io.i64(a.producer_id);
          io.i64(a.first_offset);
        });
      }
      if (v >= 11) io.i32(p.preferred_read_replica);
      io.nullable_bytes(p.records);
    });
  });
}

// ---------------------------------------------------------------------------------------------
// ListOffsets

template <typename IO, Is<ListOffsetsRequest> M>
void fields(IO& io, std::int16_t v, M& m) {
  io.i32(m.replica_id);
  if (v >= 2) io.i8(m.isolation_level);
  io.array(m.topics, kMinString + kMinArray, [&](auto& t) {
    io.string(t.name);
    io.array(t.partitions, 4 + 8, [&](auto& p) {
      io.i32(p.partition_index);
      if (v >= 4) io.i32(p.current_leader_epoch);
      io.i64(p.timestamp);
      if (v == 0) io.i32(p.max_num_offsets);
    });
  });
}

template <typename IO, Is<ListOffsetsResponse> M>
void fields(IO& io, std::int16_t v, M& m) {
  if (v >= 2) io.i32(m.throttle_time_ms);
  io.array(m.topics, kMinString + kMinArray, [&](auto& t) {
    io.string(t.name);
    io.array(t.partitions, 4 + 2, [&](auto& p) {
      io.i32(p.partition_index);
      io.error(p.error_code);
      if (v == 0) {
        io.array(p.old_style_offsets, 8, [&](auto& o) { io.i64(o); });
      } else {
        io.i64(p.timestamp);
        io.i64(p.offset);
      }
      if (v >= 4) io.i32(p.leader_epoch);
    });
  });
}

// The Writer of encode_gathered: large records fields are listed rather than copied. fields()
// is a template over its IO, so this nullable_bytes hides Writer's (no virtual call).
class GatheringWriter : public codec::Writer {
 public:
  GatheringWriter(ByteWriter& w, std::vector<GatheredBytes>& gathered)
      : Writer(w), gathered_(gathered) {}
  void nullable_bytes(const NullableBytes& x) {
    if (!x || x->size() < kMinGatheredBytes) return Writer::nullable_bytes(x);
    writer().i32(static_cast<std::int32_t>(x->size()));
    gathered_.push_back({writer().size(), *x});
  }

 private:
  std::vector<GatheredBytes>& gathered_;
};

}  // namespace

void encode_gathered(ByteWriter& w, std::int16_t version, const FetchResponse& m,
                     std::vector<GatheredBytes>& gathered) {
  GatheringWriter io(w, gathered);
  fields(io, version, m);
}

SLUICE_KAFKA_CODEC(ProduceRequest)
SLUICE_KAFKA_CODEC(ProduceResponse)
SLUICE_KAFKA_CODEC(FetchRequest)
SLUICE_KAFKA_CODEC(FetchResponse)
SLUICE_KAFKA_CODEC(ListOffsetsRequest)
SLUICE_KAFKA_CODEC(ListOffsetsResponse)

}  // namespace sluice::kafka
