#include "src/partition/partitioner.h"

#include "src/common/hash.h"

#include <unordered_map>

namespace rm {

uint32_t ShardFor(std::string_view partition_key, uint32_t num_shards) {
  return static_cast<uint32_t>(StableHash(partition_key) % num_shards);
}

namespace {

raftmetrics::v1::ShardCommand& CommandFor(std::map<uint32_t, raftmetrics::v1::ShardCommand>& commands,
                                          uint32_t shard, const CommandOptions& options) {
  auto& cmd = commands[shard];
  if (cmd.series_size() == 0) {
    cmd.set_shard(shard);
    cmd.set_idempotency_key(options.idempotency_key);
    cmd.set_key_expires_us(options.key_expires_us);
    cmd.set_issued_us(options.now_us);
  }
  return cmd;
}

void AddPoints(const std::vector<ParsedPoint>& points, uint32_t num_shards, const CommandOptions& options,
               std::map<uint32_t, raftmetrics::v1::ShardCommand>& commands) {
  // (shard, series identity) -> the SeriesPoints being filled.
  std::unordered_map<std::string, raftmetrics::v1::SeriesPoints*> open;
  std::string identity;
  for (const auto& p : points) {
    uint32_t shard = ShardFor(p.partition_key, num_shards);
    identity.clear();
    AppendSeriesIdentity(identity, p.partition_key, p.metric, p.tags);
    auto it = open.find(identity);
    raftmetrics::v1::SeriesPoints* series;
    if (it == open.end()) {
      series = CommandFor(commands, shard, options).add_series();
      series->set_metric(p.metric);
      series->set_partition_key(p.partition_key);
      for (const auto& [k, v] : p.tags) (*series->mutable_tags())[k] = v;
      open.emplace(identity, series);
    } else {
      series = it->second;
    }
    series->add_timestamps_us(p.timestamp_us != 0 ? p.timestamp_us : options.now_us);
    series->add_values(p.value);
  }
}

}  // namespace

std::map<uint32_t, raftmetrics::v1::ShardCommand> BuildShardCommands(
    const std::vector<ParsedPoint>& points, uint32_t num_shards, const CommandOptions& options) {
  std::map<uint32_t, raftmetrics::v1::ShardCommand> commands;
  AddPoints(points, num_shards, options, commands);
  return commands;
}

std::map<uint32_t, raftmetrics::v1::ShardCommand> SplitIntoShardCommands(
    ParsedInsert&& insert, uint32_t num_shards, const CommandOptions& options) {
  std::map<uint32_t, raftmetrics::v1::ShardCommand> commands;
  for (auto& s : insert.series) {
    uint32_t shard = ShardFor(s.partition_key(), num_shards);
    for (auto& ts : *s.mutable_timestamps_us()) {
      if (ts == 0) ts = options.now_us;
    }
    CommandFor(commands, shard, options).add_series()->Swap(&s);
  }
  return commands;
}

uint64_t PointCount(const raftmetrics::v1::ShardCommand& command) {
  uint64_t n = 0;
  for (const auto& s : command.series()) n += static_cast<uint64_t>(s.values_size());
  return n;
}

}  // namespace rm
