// Sends per-shard commands to the workers that own the shards, in parallel (one
// request per worker), applying commands for this node's own shards through
// `apply_local`. Used by the control node and by workers that forward inserts.
//
// A shard either stored its command (ok) or did not (failed): commands are
// atomic per shard. The summary says which, so that a caller can report exactly
// what was stored and a retry with the same idempotency key completes the rest.
#pragma once

#include "proto/raftmetrics.pb.h"
#include "src/cluster/cluster_map.h"
#include "src/cluster/write_sender.h"

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace rm {

struct ShardWriteOutcome {
  uint32_t shard = 0;
  std::string worker_id;
  bool ok = false;
  uint64_t points = 0;     // points in the command
  uint64_t stored = 0;     // points stored (first application, also on a duplicate)
  bool duplicate = false;
  Status error;            // when !ok
  std::string error_code;  // the worker's code when !ok (NOT_LEADER, RAFT_ERROR, ...)
  uint64_t term = 0;       // RAFT_ERROR: the group's term
  // The failed attempts, in order ("worker-1 NOT_LEADER -> worker-2; ..."):
  // why a write that gave up did, for the log. Empty when the first try worked.
  std::string attempts;
};

struct WriteSummary {
  std::vector<ShardWriteOutcome> shards;
  uint64_t total_points = 0;
  uint64_t stored_points = 0;
  uint32_t replication_factor = 1;  // for RAFT_ERROR's required_nodes
  // For RAFT_ERROR, filled by the caller from what it knows of the cluster:
  // replicas reachable (the fewest over the failed shards; -1 unknown) and the
  // highest term it has seen of their groups.
  int64_t available_nodes = -1;
  uint64_t known_term = 0;
  bool all_ok() const;
  // 503 in the seed's error shape saying what was stored and what failed.
  Status FailureStatus(const std::string& idempotency_key) const;
  // One line for the log: each failed shard, its last error and the attempts.
  std::string DescribeFailures() const;
};

using LocalApply = std::function<raftmetrics::v1::ShardWriteResult(const raftmetrics::v1::ShardCommand&)>;
// Which worker to try first for a shard (nullptr: its owner).
using RouteFn = std::function<const WorkerInfo*(uint32_t shard)>;
// Told the leader of a shard learnt from a NOT_LEADER answer.
using LeaderFn = std::function<void(uint32_t shard, const std::string& worker_id)>;
// Whether a worker answers health checks (nullptr: assume every one does).
using HealthFn = std::function<bool(const WorkerInfo& worker)>;

// With replicated shards a command goes to the shard's leader: a replica that
// is not the leader answers NOT_LEADER naming it, and the command follows the
// hint; during an election (no leader named) or when a replica is down, the
// next replica is tried after a short pause, until `timeout` has passed. A
// hint naming a worker that `healthy` calls down is not followed (a follower
// may still name a leader that was just cut off: connecting to it would only
// time out), and the next replica tried is a healthy one when there is one.
WriteSummary DispatchWrites(const ClusterMap& map,
                            std::map<uint32_t, raftmetrics::v1::ShardCommand> commands,
                            WriteSender& sender, std::chrono::milliseconds timeout,
                            const std::string& self_id, const LocalApply& apply_local, const RouteFn& route = nullptr,
                            const LeaderFn& learned_leader = nullptr, const HealthFn& healthy = nullptr);

// A key for writes that came without one, unique per process and call: makes
// the node's own retries (stale keep-alive connections) safe.
std::string AutoIdempotencyKey(const std::string& node_id);

// Headers every node-to-node call carries: the cluster secret as a bearer
// credential (when the cluster has one).
std::vector<std::pair<std::string, std::string>> InternalHeaders(const std::string& cluster_secret);

}  // namespace rm
