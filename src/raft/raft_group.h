// RaftGroup: one Raft replica of one group (a shard, or the meta group) on a
// RaftLoop, over the raft library's libuv I/O (log and snapshots under `dir`,
// TCP transport on `address`).
//
// Commands are opaque bytes. Each becomes exactly one log entry, framed and
// padded to a multiple of 8 bytes (the library loses or rejects other sizes,
// see shared notes/raft-library.md). Committed entries reach the StateMachine
// in log order with their index; the state machine stores the index with its
// data so that a replay after restart is recognised and skipped.
//
// Thread-safety: Propose() and GetStatus() may be called from any thread; they
// hop onto the loop thread. StateMachine::Apply runs on the loop thread.
#pragma once

#include "src/common/status.h"
#include "src/raft/raft_loop.h"

#include <chrono>
#include <cstdint>
#include <future>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace rm::raft {

class StateMachine {
 public:
  virtual ~StateMachine() = default;
  // Applies committed entry `index`. Must be deterministic. A failure here
  // means this replica cannot follow the log any more: the process aborts and
  // recovers by replaying from its last stored index (crash-and-recover).
  virtual Status Apply(uint64_t index, std::string_view command) = 0;
  // Describes the state after entry `index` (every entry up to it applied) in a
  // few bytes: the Raft snapshot, after which the library drops old entries.
  // The state itself travels out of band (DESIGN.md: snapshots are logical).
  // kUnavailable when the state has not caught up with `index` yet: the
  // library tries again after later entries.
  virtual Result<std::string> Snapshot(uint64_t index) = 0;
  // Brings the state to at least that of a snapshot made by some replica's
  // Snapshot(): nothing to do when it is there already (a restart), else the
  // state machine catches up out of band before it applies later entries.
  virtual Status Restore(std::string_view snapshot) = 0;
};

struct RaftPeer {
  uint64_t id = 0;
  std::string address;  // host:port of the peer's Raft transport
};

class RaftNetwork;

struct RaftGroupOptions {
  uint64_t id = 0;            // this replica's Raft id (> 0)
  std::string address;        // host:port this replica listens on for Raft traffic
  // Share one port among the node's groups (see raft_network.h): the network
  // and this group's id on it. Null: a TCP listener of its own on `address`.
  RaftNetwork* network = nullptr;
  uint64_t group_id = 0;
  std::string dir;            // log and metadata; created if missing
  std::string name;           // for the log, e.g. "shard 3"; default "raft group <group_id>"
  unsigned election_timeout_ms = 1000;
  unsigned heartbeat_timeout_ms = 100;
  unsigned max_inflight_entries = 512;  // the default 32 halves small-entry throughput
  // Log compaction: a snapshot every `snapshot_threshold` committed entries,
  // keeping the last `snapshot_trailing` entries so a follower slightly behind
  // catches up from the log rather than by snapshot. 0 disables snapshots.
  unsigned snapshot_threshold = 1024;
  unsigned snapshot_trailing = 512;
  // Our snapshots are 16 bytes (the files travel out of band), so an install
  // that got no answer in 3 s was lost: the library then sends it again.
  unsigned install_snapshot_timeout_ms = 3000;
};

struct RaftStatus {
  std::string role;  // "leader", "follower", "candidate", "unavailable"
  uint64_t term = 0;
  uint64_t commit_index = 0;
  uint64_t last_applied = 0;
  uint64_t last_log_index = 0;
  uint64_t leader_id = 0;      // 0: none known
  std::string leader_address;
  // Milliseconds since this replica last heard from its leader (a leader: from
  // a majority of its followers); -1 when unknown.
  int64_t last_contact_ms = -1;
};

class RaftGroup {
 public:
  RaftGroup(RaftLoop& loop, RaftGroupOptions options, StateMachine& fsm);
  ~RaftGroup();
  RaftGroup(const RaftGroup&) = delete;
  RaftGroup& operator=(const RaftGroup&) = delete;

  // Starts the replica. `bootstrap` is the initial configuration, used only
  // when `dir` holds no Raft state yet (every founding member passes the same).
  Status Start(const std::vector<RaftPeer>& bootstrap);
  // Appends `command` if this replica leads, and resolves with the entry's
  // index once it is committed and applied here. kUnavailable when not the
  // leader (details: leader_id, leader_address) or leadership was lost before
  // the commit (the entry may still commit later: make commands idempotent).
  std::future<Result<uint64_t>> Propose(std::string command);
  // Linearizable-read fence: resolves OK once this replica, as leader, has
  // committed a barrier entry, so every entry acknowledged before the call has
  // been handed to the state machine. kUnavailable when not the leader.
  std::future<Status> Barrier();
  // Membership (on the leader; kUnavailable elsewhere, with a leader hint).
  // AddVoter adds `id` as a spare, then promotes it: the library first lets it
  // catch up (entries or a snapshot), then commits the new configuration.
  // Resolves OK when that is committed; OK at once if `id` already votes.
  std::future<Status> AddVoter(uint64_t id, std::string address);
  // Removes `id` from the configuration (OK at once if it is not a member).
  // With `hand_over`, a leader asked to remove itself hands leadership to
  // another voter instead and answers kUnavailable "not the leader" naming it:
  // ask that one (so the group is never without a leader for an election
  // timeout). Otherwise, or alone in the group, it removes itself and steps
  // down once the change is committed.
  std::future<Status> RemoveMember(uint64_t id, bool hand_over = true);
  // The ids of the current configuration's voters (empty when closed).
  std::vector<uint64_t> Voters();
  RaftStatus GetStatus();
  // Closes the replica (idempotent); pending proposals fail.
  void Close();

  // Frames `command` into an entry payload: 8-byte little-endian length, the
  // bytes, zero padding to a multiple of 8. Decode returns nullopt-like empty
  // on a malformed payload (false).
  static std::string EncodeEntry(std::string_view command);
  static bool DecodeEntry(const void* data, size_t size, std::string_view* command);

  struct Impl;  // the library's structs; opaque outside raft_group.cc

 private:
  RaftLoop& loop_;
  Impl* impl_;  // owned; freed when the loop stops (libuv may still touch it while closing)
};

// Waits for a membership change (AddVoter/RemoveMember): its outcome, or
// kTimeout after `timeout` (the change may still complete). `what` names it.
Status AwaitChange(std::future<Status> change, std::chrono::milliseconds timeout, const std::string& what);

}  // namespace rm::raft
