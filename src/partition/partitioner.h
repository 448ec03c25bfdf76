// Maps partition keys to shards and groups parsed points into one command per
// shard. shard = xxHash3(partition_key) mod S, with S fixed for the cluster's
// life; moving data between workers moves whole shards, never rehashes keys.
#pragma once

#include "proto/raftmetrics.pb.h"
#include "src/wire/point.h"
#include "src/wire/point_parser.h"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace rm {

uint32_t ShardFor(std::string_view partition_key, uint32_t num_shards);

struct CommandOptions {
  int64_t now_us = 0;                // fills points without a timestamp
  std::string idempotency_key;       // same key on every shard's command
  int64_t key_expires_us = 0;
};

// Groups points by shard, and within a shard by series (metric, partition key,
// tags), so every series is described once per command. Points keep their input
// order within a series.
std::map<uint32_t, raftmetrics::v1::ShardCommand> BuildShardCommands(
    const std::vector<ParsedPoint>& points, uint32_t num_shards, const CommandOptions& options);

// Same for a whole parsed request; columnar series are moved, not copied.
std::map<uint32_t, raftmetrics::v1::ShardCommand> SplitIntoShardCommands(
    ParsedInsert&& insert, uint32_t num_shards, const CommandOptions& options);

// Points carried by a command.
uint64_t PointCount(const raftmetrics::v1::ShardCommand& command);

}  // namespace rm
