// ShardReplica: one shard's ShardStore behind its Raft group (the state machine
// adapter of DESIGN.md's "Replication").
//
// The leader proposes each ShardCommand as one log entry. Every replica applies
// committed entries to its store in log order, with the entry's index
// (ShardStore::Apply stores it in the same DuckDB transaction, so an entry
// replayed after a restart is recognised and skipped). Applying happens on the
// replica's own apply thread: the Raft loop only enqueues, so DuckDB commits
// never stall heartbeats of the groups sharing the loop. Applied entries may
// wait in the store's write buffer (shard_store.h), Raft's log being their
// durability: before a snapshot lets libraft drop that log, the apply thread
// writes the buffer to DuckDB.
//
// What entries and snapshots mean is ShardStateMachine's (shard_state_machine.h);
// this class adds the threading. Snapshots (log compaction): a replica that must
// install one (it fell behind the leader's log, or is new) fetches the shard's
// files from a replica that has applied at least that index, retrying until one
// answers, before it applies any later entry.
//
// A store that fails to apply an entry (e.g. a full disk) stops applying: the
// replica turns unavailable instead of silently skipping the entry and
// diverging; a restart replays the log from the store's last index.
#pragma once

#include "proto/raftmetrics.pb.h"
#include "src/raft/raft_group.h"
#include "src/raft/shard_state_machine.h"
#include "src/storage/shard_store.h"

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <thread>

namespace rm::raft {

class ShardReplica : public StateMachine {
 public:
  // `store` must outlive the replica.
  ShardReplica(RaftLoop& loop, RaftGroupOptions options, ShardStore& store, SnapshotFetcher fetcher = {});
  ~ShardReplica() override;

  Status Start(const std::vector<RaftPeer>& bootstrap);
  // Proposes `command` (on the leader) and waits until it is committed and
  // applied to this replica's store; returns the store's outcome. kUnavailable
  // when not the leader (details: leader_id, leader_address) and kTimeout when
  // the entry did not commit in time (it may still commit later: commands carry
  // idempotency keys, so a retry never stores twice).
  Result<ApplyOutcome> Write(const raftmetrics::v1::ShardCommand& command, std::chrono::milliseconds timeout);
  // For strong reads: waits until this replica is the leader with a committed
  // barrier and its store has applied every entry before it.
  Status ReadBarrier(std::chrono::milliseconds timeout);
  RaftStatus GetStatus() { return group_.GetStatus(); }
  // Membership changes, on the leader (see RaftGroup::AddVoter/RemoveMember);
  // kTimeout when not done within `timeout` (the change may still complete).
  Status AddVoter(uint64_t id, const std::string& address, std::chrono::milliseconds timeout);
  Status RemoveMember(uint64_t id, std::chrono::milliseconds timeout);
  std::vector<uint64_t> Voters() { return group_.Voters(); }
  // Index of the last entry this replica's store has applied.
  uint64_t applied_index() const;
  // Snapshots this replica installed from another one (since it started).
  uint64_t snapshots_installed() const;
  // Stops Raft, then the apply thread (entries already committed are applied).
  void Close();

 private:
  // On the Raft loop.
  Status Apply(uint64_t index, std::string_view command) override;  // enqueue
  Result<std::string> Snapshot(uint64_t index) override;
  Status Restore(std::string_view snapshot) override;  // enqueue an install
  void ApplyLoop();
  // On the apply thread: writes the store's buffer to DuckDB for a snapshot.
  void FlushForSnapshot();
  // On the apply thread: fetches and installs until the store reaches `ref`.
  void InstallUpTo(const ShardSnapshotRef& ref);

  struct Item {
    uint64_t index;
    std::string command;   // a ShardCommand; for an install, empty
    bool install = false;  // a snapshot at `index` to catch up to
    uint64_t source_id = 0;
  };

  ShardStore& store_;
  ShardStateMachine core_;
  RaftGroup group_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Item> queue_;  // committed, not yet applied
  std::map<uint64_t, Result<ApplyOutcome>> outcomes_;   // recent outcomes, for proposers
  uint64_t applied_ = 0;        // last index handled by the apply thread
  uint64_t enqueued_ = 0;       // last index handed over by the Raft loop
  Status failure_;              // set when the store failed: no more applies
  bool stopping_ = false;
  // The Raft loop wants a snapshot: the apply thread empties the store's write
  // buffer and writes through until one is taken (the log before it is dropped).
  bool snapshot_wanted_ = false;
  std::thread applier_;
};

}  // namespace rm::raft
