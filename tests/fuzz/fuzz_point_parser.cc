// libFuzzer target: insert bodies as POST /insert and POST /metrics receive them
// (src/wire/point_parser.h), followed by what the control node does next.
//
// Input: byte 0 picks the request, the rest is the body.
//   bit 0      dialect: 0 = /insert (kInsert), 1 = /metrics (kMetrics)
//   bits 1..7  Content-Type: kContentTypes[(byte0 >> 1) % size]
// On success: SplitIntoShardCommands (as the control node; the worker does the
// same) and every command serialised as it is sent, plus Flatten. On failure:
// the error rendered as the reply (ErrorResponse). Invariants that would corrupt
// a write (lost points, a command on the wrong shard) abort.
#include "src/common/status.h"
#include "src/net/error_response.h"
#include "src/partition/partitioner.h"
#include "src/wire/point_parser.h"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include <google/protobuf/stubs/logging.h>

namespace {

constexpr std::string_view kContentTypes[] = {
    "application/json",
    "application/x-ndjson",
    "application/x-protobuf",
    "",
    "application/json; charset=utf-8",
    "application/ndjson",
    "application/protobuf",
    "text/plain",
    "application/x-www-form-urlencoded",
    "APPLICATION/X-PROTOBUF ; q=1",
    "image/png",
};
constexpr size_t kNumContentTypes = sizeof kContentTypes / sizeof kContentTypes[0];

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "fuzz_point_parser: invariant broken: %s\n", what);
    std::abort();
  }
}

}  // namespace

// Protobuf logs every string field that is not UTF-8: quiet, and faster.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const auto dialect = (data[0] & 1) ? rm::InsertDialect::kMetrics : rm::InsertDialect::kInsert;
  const std::string_view content_type = kContentTypes[(data[0] >> 1) % kNumContentTypes];
  const std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);

  auto parsed = rm::ParseInsertBody(body, content_type, dialect);
  if (!parsed.ok()) {
    const rm::Code code = parsed.status().code();
    Check(code == rm::Code::kValidation || code == rm::Code::kInvalidRequest, "error is not a 400");
    rm::HttpResponse reply = rm::ErrorResponse(parsed.status());
    Check(reply.status == 400, "error reply is not a 400");
    return 0;
  }

  const size_t points = parsed->PointCount();
  Check(points > 0, "accepted a request without points");
  const auto flat = parsed->Flatten();
  Check(flat.size() == points, "Flatten lost or invented points");
  for (const auto& p : flat) {
    Check(!p.metric.empty() && !p.partition_key.empty(), "point without metric or partition key");
  }

  constexpr uint32_t kShards = 16;
  rm::CommandOptions options;
  options.now_us = 1705764600LL * 1000000;  // 2024-01-20T15:30:00Z
  options.idempotency_key = "fuzz";
  options.key_expires_us = options.now_us + 600LL * 1000000;
  auto commands = rm::SplitIntoShardCommands(std::move(*parsed), kShards, options);
  uint64_t total = 0;
  for (const auto& [shard, command] : commands) {
    Check(shard < kShards && command.shard() == shard, "command on a shard out of range");
    for (const auto& s : command.series()) {
      Check(rm::ShardFor(s.partition_key(), kShards) == shard, "series on the wrong shard");
      Check(s.timestamps_us_size() == s.values_size(), "series columns differ in length");
      for (int64_t ts : s.timestamps_us()) Check(ts != 0, "point left without a timestamp");
    }
    total += rm::PointCount(command);
    std::string wire = command.SerializeAsString();
    raftmetrics::v1::ShardCommand back;
    Check(back.ParseFromString(wire), "a shard command does not parse back");
  }
  Check(total == points, "shard commands lost or invented points");
  return 0;
}
