// libFuzzer target for the Kafka record-batch decoder (core/src/kafka/record_batch.h): the
// input is the records field of one Produce partition (RecordBatch v2 batches or a magic 0/1
// message set, compressed or not). decode_produce_records must never crash, read out of
// bounds or expand past its limit; every record it returns must lie inside the input or the
// batch's decompressed storage. decode_stored_batches gets the same bytes.
//
// Seed mode: with SLUICE_FUZZ_SEEDS_DIR=DIR set, the binary writes valid inputs (a plain v2
// batch with keys and headers, and one per codec) into DIR and exits.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "kafka/compression.h"
#include "kafka/record_batch.h"
#include "shm/crc32c.h"

using namespace sluice::kafka;

namespace {

constexpr std::size_t kMaxDecompressed = 1 << 20;

bool inside(std::string_view v, std::string_view input, const std::vector<char>& storage) {
  auto in = [&](const char* b, std::size_t n) {
    return v.data() >= b && v.data() + v.size() <= b + n;
  };
  return v.empty() || in(input.data(), input.size()) || in(storage.data(), storage.size());
}

void check(const DecodeResult& result, std::string_view input) {
  const auto* batches = std::get_if<std::vector<DecodedBatch>>(&result);
  if (batches == nullptr) return;
  for (const DecodedBatch& b : *batches)
    for (const RecordView& r : b.records) {
      bool ok = (!r.key || inside(*r.key, input, b.storage)) &&
                (!r.value || inside(*r.value, input, b.storage));
      for (const RecordHeaderView& h : r.headers)
        ok = ok && inside(h.key, input, b.storage) &&
             (!h.value || inside(*h.value, input, b.storage));
      if (!ok) {
        std::fprintf(stderr, "a decoded record points outside its batch\n");
        std::abort();
      }
    }
}

// A v2 batch of `n` records (keys, a header, a null value), compressed with `codec`.
std::string seed_batch(Codec codec, int n) {
  ByteWriter w;
  BatchEncoder enc;
  enc.begin(w, 0, 1'700'000'000'000);
  std::vector<RecordHeaderView> headers = {{"h", std::string_view("v")}, {"n", std::nullopt}};
  std::vector<std::string> values;
  for (int i = 0; i < n; ++i) values.push_back("value-" + std::to_string(i));
  for (int i = 0; i < n; ++i)
    enc.add(RecordOut{i, 1'700'000'000'000 + i, std::string_view("key"),
                      i % 5 == 4
                          ? std::nullopt
                          : std::optional<std::string_view>(values[static_cast<std::size_t>(i)]),
                      headers});
  enc.finish();
  std::string batch = w.take();
  if (codec == Codec::kNone) return batch;
  // Compress the records section and fix the header: attributes, length and CRC.
  std::string compressed;
  if (compress(codec, std::string_view(batch).substr(kBatchHeaderSize), compressed)) return batch;
  std::string out = batch.substr(0, kBatchHeaderSize) + compressed;
  auto put32 = [&](std::size_t at, std::uint32_t v) {
    for (int i = 0; i < 4; ++i)
      out[at + static_cast<std::size_t>(i)] = static_cast<char>(v >> (24 - 8 * i));
  };
  out[kBatchAttributesOffset] = 0;
  out[kBatchAttributesOffset + 1] = static_cast<char>(codec);
  put32(kBatchLengthOffset, static_cast<std::uint32_t>(out.size() - kBatchLogOverhead));
  put32(kBatchCrcOffset, sluice::shm::crc32c(out.data() + kBatchAttributesOffset,
                                             out.size() - kBatchAttributesOffset));
  return out;
}

void write_seeds(const char* dir) {
  int n = 0;
  for (Codec c : {Codec::kNone, Codec::kGzip, Codec::kSnappy, Codec::kLz4, Codec::kZstd}) {
    std::string path = std::string(dir) + "/seed-" + std::to_string(n++);
    std::string bytes = seed_batch(c, 7) + seed_batch(c, 2);
    if (FILE* f = std::fopen(path.c_str(), "wb")) {
      std::fwrite(bytes.data(), 1, bytes.size(), f);
      std::fclose(f);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (const char* dir = std::getenv("SLUICE_FUZZ_SEEDS_DIR")) {
    write_seeds(dir);
    std::exit(0);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  check(decode_produce_records(input, kMaxDecompressed), input);
  check(decode_stored_batches(input, kMaxDecompressed), input);
  return 0;
}
