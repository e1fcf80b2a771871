// Micro-benchmarks of Kafka record batches (core/src/kafka/record_batch.h), to choose the
// gateway's stored form by measurement (issue 5): keep produced client batches as they came
// (Fetch then sends stored bytes; only produce-side decode/validation is paid), or store records
// as individual frames (Fetch then re-encodes a v2 batch with its CRC-32C every time).
//
//   Decode/<value bytes>/<codec>   decode_produce_records of one producer batch of 100 records
//                                  (8-byte keys, no headers), CRC-32C and every record checked;
//                                  bytes/s are of the UNCOMPRESSED batch, so codecs compare on
//                                  the same payload; counter wire_bytes = the batch as sent.
//   Encode/<value bytes>           BatchEncoder of the same 100 records, CRC-32C included
//                                  (what Fetch pays per batch when records are stored as frames).
//   CopyStored/<value bytes>       memcpy of the stored batch + patch_base_offset: what Fetch pays
//                                  per batch when batches are stored as they came.
//
// Values are half a fixed template, half random letters from a 16-letter alphabet, so they
// compress roughly as log-like payloads do (neither all-zero nor incompressible).
//
// Run: build/bench/kafka_batch_bench [--benchmark_repetitions=3 --benchmark_min_time=0.5]
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kafka/compression.h"
#include "kafka/record_batch.h"
#include "shm/crc32c.h"

namespace {

using namespace sluice::kafka;

constexpr int kRecords = 100;

struct Payload {
  std::vector<std::string> keys;
  std::vector<std::string> values;
};

Payload make_payload(std::size_t value_size) {
  std::mt19937 rng(12345);
  Payload p;
  const std::string tmpl = "{\"level\":\"info\",\"service\":\"checkout\",\"msg\":\"request done\"";
  for (int i = 0; i < kRecords; ++i) {
    char key[16];
    std::snprintf(key, sizeof key, "key-%04d", i);
    p.keys.emplace_back(key);
    std::string v(value_size, ' ');
    for (std::size_t j = 0; j < value_size; ++j)
      v[j] = j < value_size / 2 ? tmpl[j % tmpl.size()]
                                : static_cast<char>('a' + static_cast<int>(rng() % 16));
    p.values.push_back(std::move(v));
  }
  return p;
}

void encode_into(ByteWriter& w, const Payload& p) {
  BatchEncoder enc;
  enc.begin(w, 0, 1700000000000);
  for (int i = 0; i < kRecords; ++i) {
    auto u = static_cast<std::size_t>(i);
    enc.add(RecordOut{i, 1700000000000 + i, p.keys[u], p.values[u], {}});
  }
  enc.finish();
}

std::string plain_batch(const Payload& p) {
  ByteWriter w;
  encode_into(w, p);
  return w.take();
}

// The plain batch with its records compressed by `codec` and the header fixed up.
std::string compressed_batch(const std::string& plain, Codec codec) {
  std::string out = plain.substr(0, kBatchHeaderSize);
  if (compress(codec, std::string_view(plain).substr(kBatchHeaderSize), out)) std::abort();
  auto put32 = [&out](std::size_t at, std::uint32_t v) {
    std::uint32_t be = __builtin_bswap32(v);
    std::memcpy(out.data() + at, &be, 4);
  };
  put32(kBatchLengthOffset, static_cast<std::uint32_t>(out.size() - kBatchLogOverhead));
  out[kBatchAttributesOffset + 1] = static_cast<char>(static_cast<int>(codec));
  put32(kBatchCrcOffset, sluice::shm::crc32c(out.data() + kBatchAttributesOffset,
                                             out.size() - kBatchAttributesOffset));
  return out;
}

void BM_Decode(benchmark::State& state) {
  auto value_size = static_cast<std::size_t>(state.range(0));
  auto codec = static_cast<Codec>(state.range(1));
  const std::string plain = plain_batch(make_payload(value_size));
  const std::string wire = codec == Codec::kNone ? plain : compressed_batch(plain, codec);
  for (auto _ : state) {
    DecodeResult r = decode_produce_records(wire, std::size_t{64} << 20);
    if (!std::holds_alternative<std::vector<DecodedBatch>>(r)) {
      state.SkipWithError(std::get<DecodeError>(r).message.c_str());
      break;
    }
    benchmark::DoNotOptimize(r);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(plain.size()));
  state.SetItemsProcessed(state.iterations() * kRecords);
  state.counters["wire_bytes"] = static_cast<double>(wire.size());
  state.SetLabel(codec_name(codec));
}

void BM_Encode(benchmark::State& state) {
  auto value_size = static_cast<std::size_t>(state.range(0));
  const Payload p = make_payload(value_size);
  ByteWriter w;
  std::size_t size = 0;
  for (auto _ : state) {
    w.buffer().clear();
    encode_into(w, p);
    size = w.size();
    benchmark::DoNotOptimize(w.buffer().data());
  }
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(size));
  state.SetItemsProcessed(state.iterations() * kRecords);
}

void BM_CopyStored(benchmark::State& state) {
  auto value_size = static_cast<std::size_t>(state.range(0));
  const std::string plain = plain_batch(make_payload(value_size));
  std::string out(plain.size(), '\0');
  std::int64_t offset = 0;
  for (auto _ : state) {
    std::memcpy(out.data(), plain.data(), plain.size());
    patch_base_offset(out.data(), offset++);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(plain.size()));
  state.SetItemsProcessed(state.iterations() * kRecords);
}

BENCHMARK(BM_Decode)
    ->Name("Decode")
    ->ArgNames({"value", "codec"})
    ->ArgsProduct({{100, 1024},
                   {static_cast<int>(Codec::kNone), static_cast<int>(Codec::kLz4),
                    static_cast<int>(Codec::kZstd), static_cast<int>(Codec::kSnappy),
                    static_cast<int>(Codec::kGzip)}});
BENCHMARK(BM_Encode)->Name("Encode")->ArgName("value")->Arg(100)->Arg(1024);
BENCHMARK(BM_CopyStored)->Name("CopyStored")->ArgName("value")->Arg(100)->Arg(1024);

}  // namespace

BENCHMARK_MAIN();
