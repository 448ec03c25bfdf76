// ShardStateMachine: what a shard's Raft entries and snapshots mean for its
// ShardStore, without any threading.
//
// - An entry is a serialized ShardCommand, applied with its log index
//   (ShardStore::Apply skips an index it has applied: replays are harmless).
// - Entries may wait in the store's write buffer (shard_store.h): Raft's log
//   is their durability. Because the log before a snapshot is dropped, a
//   snapshot is only taken once the buffer is in DuckDB.
// - A Raft snapshot is 16 bytes: the index the store has applied and the Raft id
//   of the replica that took it. The state itself (the DuckDB file and WAL)
//   travels out of band: a replica that must catch up fetches an exported
//   snapshot of at least that index through its SnapshotFetcher and installs it.
//
// ShardReplica drives these pieces from its own apply thread, so that DuckDB
// commits never stall the Raft loop. Used directly as a StateMachine it applies
// synchronously: that is how the deterministic tests run it on libraft's
// in-memory raft_fixture (tests/unit/shard_fixture_test.cc).
#pragma once

#include "proto/raftmetrics.pb.h"
#include "src/raft/raft_group.h"
#include "src/storage/shard_store.h"

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace rm::raft {

// Fetches an exported snapshot (ShardStore::ExportSnapshot) of `shard` that has
// applied at least `min_index`, preferably from the replica with Raft id
// `source_id`.
using SnapshotFetcher =
    std::function<Result<std::string>(uint32_t shard, uint64_t min_index, uint64_t source_id)>;

// What a shard's Raft snapshot says.
struct ShardSnapshotRef {
  uint64_t index = 0;      // the store of replica `source_id` had applied this entry
  uint64_t source_id = 0;
};

class ShardStateMachine : public StateMachine {
 public:
  // `store` must outlive this object.
  ShardStateMachine(ShardStore& store, uint64_t self_id, SnapshotFetcher fetcher);

  // Parses entry `index` and applies it to the store.
  Result<ApplyOutcome> ApplyEntry(uint64_t index, std::string_view command);
  // The same for consecutive entries, in one store transaction; one result each.
  // With may_buffer the store may keep them in its write buffer (Raft's log
  // holds them until a snapshot, which must find the buffer empty).
  struct LogEntry {
    uint64_t index;
    std::string_view command;
  };
  std::vector<Result<ApplyOutcome>> ApplyEntries(const std::vector<LogEntry>& entries, bool may_buffer = true);
  // The Raft snapshot of the store as it is now; its buffer must be empty.
  std::string SnapshotPayload() const;
  static Result<ShardSnapshotRef> ParseSnapshot(std::string_view payload);
  // One attempt to bring the store to at least `ref.index`: OK when it is there
  // (already, or after fetching and installing a snapshot).
  Status CatchUp(const ShardSnapshotRef& ref);
  // Snapshots installed from another replica.
  uint64_t snapshots_installed() const { return snapshots_installed_.load(); }
  ShardStore& store() { return store_; }

  // StateMachine, synchronous (see the file comment).
  Status Apply(uint64_t index, std::string_view command) override;
  Result<std::string> Snapshot(uint64_t index) override;
  Status Restore(std::string_view snapshot) override;

 private:
  ShardStore& store_;
  const uint64_t self_id_;
  const SnapshotFetcher fetcher_;
  std::atomic<uint64_t> snapshots_installed_{0};
};

}  // namespace rm::raft
