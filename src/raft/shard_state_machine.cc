#include "src/raft/shard_state_machine.h"

#include <spdlog/spdlog.h>

namespace rm::raft {
namespace {

void PutU64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
uint64_t GetU64(std::string_view in, size_t at) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(static_cast<unsigned char>(in[at + i])) << (8 * i);
  return v;
}

}  // namespace

ShardStateMachine::ShardStateMachine(ShardStore& store, uint64_t self_id, SnapshotFetcher fetcher)
    : store_(store), self_id_(self_id), fetcher_(std::move(fetcher)) {}

Result<ApplyOutcome> ShardStateMachine::ApplyEntry(uint64_t index, std::string_view command) {
  return std::move(ApplyEntries({{index, command}}).front());
}

std::vector<Result<ApplyOutcome>> ShardStateMachine::ApplyEntries(const std::vector<LogEntry>& entries,
                                                                  bool may_buffer) {
  // A malformed entry fails alone, after the ones before it are applied; the
  // caller stops there (entries after it must not be applied out of order).
  std::vector<raftmetrics::v1::ShardCommand> parsed(entries.size());
  size_t good = 0;
  while (good < entries.size() &&
         parsed[good].ParseFromArray(entries[good].command.data(), static_cast<int>(entries[good].command.size()))) {
    ++good;
  }
  std::vector<ShardStore::Entry> batch;
  for (size_t i = 0; i < good; ++i) batch.push_back({&parsed[i], entries[i].index, &parsed[i]});
  std::vector<Result<ApplyOutcome>> results;
  if (!batch.empty()) results = store_.ApplyBatch(batch, may_buffer);
  if (good < entries.size()) {
    results.push_back(
        Status(Code::kInternal, "log entry " + std::to_string(entries[good].index) + " is not a ShardCommand"));
  }
  return results;
}

std::string ShardStateMachine::SnapshotPayload() const {
  RM_CHECK(store_.durable_index() >= store_.applied_index(), "a shard snapshot while entries wait in the write buffer");
  std::string payload;
  PutU64(payload, store_.applied_index());
  PutU64(payload, self_id_);
  return payload;
}

Result<ShardSnapshotRef> ShardStateMachine::ParseSnapshot(std::string_view payload) {
  if (payload.size() != 16) return Status(Code::kInternal, "malformed shard snapshot");
  return ShardSnapshotRef{GetU64(payload, 0), GetU64(payload, 8)};
}

Status ShardStateMachine::CatchUp(const ShardSnapshotRef& ref) {
  if (store_.applied_index() >= ref.index) return Status::Ok();  // e.g. a restart
  if (!fetcher_) return Status(Code::kInternal, "no snapshot source configured");
  spdlog::info("shard {}: store at index {}, installing a snapshot of at least {} (from replica {} or another)",
               store_.shard(), store_.applied_index(), ref.index, ref.source_id);
  Result<std::string> blob = fetcher_(store_.shard(), ref.index, ref.source_id);
  if (!blob.ok()) return blob.status();
  Status s = store_.InstallSnapshot(*blob);
  if (!s.ok()) return s;
  if (store_.applied_index() < ref.index) return Status(Code::kUnavailable, "the snapshot fetched is older than needed");
  ++snapshots_installed_;
  spdlog::info("shard {}: snapshot installed, store now at index {}", store_.shard(), store_.applied_index());
  return Status::Ok();
}

Status ShardStateMachine::Apply(uint64_t index, std::string_view command) {
  Result<ApplyOutcome> outcome = ApplyEntry(index, command);
  return outcome.ok() ? Status::Ok() : outcome.status();
}

Result<std::string> ShardStateMachine::Snapshot(uint64_t index) {
  RM_CHECK(store_.applied_index() <= index, "shard store is ahead of the Raft log");
  // The log up to `index` is dropped after this: DuckDB must hold it all.
  if (Status flushed = store_.Flush(); !flushed.ok()) return flushed;
  return SnapshotPayload();
}

Status ShardStateMachine::Restore(std::string_view snapshot) {
  Result<ShardSnapshotRef> ref = ParseSnapshot(snapshot);
  if (!ref.ok()) return ref.status();
  return CatchUp(*ref);
}

}  // namespace rm::raft
