// MetaGroup: the control nodes' own Raft group (DESIGN.md, "the meta group").
// Its state machine is the cluster map: each change of the map is one log entry
// carrying the whole new map (a few kilobytes), applied in log order on every
// control node, so all of them route by the same map and any of them can take
// over when the leader dies. Only the leader changes the map (registrations,
// placement, replica moves); the others forward such requests to it.
//
// The log and snapshots live under `dir` (DB_PATH/meta); a snapshot is simply
// the latest map. One control node is a group of one (it leads at once); three
// tolerate the loss of one.
//
// Membership: the founders are the --control-nodes list (Raft ids 1, 2, ... in
// list order), and they bootstrap the group. A control node added at run time
// (POST /join with role "control") starts empty, with a Raft id derived from
// its HTTP address (JoinedControlRaftId), and the leader adds it (AddMember).
// Once membership changed, the map's control_nodes are the list of members;
// every node learns the others' addresses from there.
//
// Thread-safety: all methods may be called from any thread. The map callback
// runs on the group's Raft loop thread, in log order.
#pragma once

#include "src/cluster/cluster_map.h"
#include "src/raft/raft_group.h"
#include "src/raft/raft_loop.h"
#include "src/raft/raft_network.h"

#include <nlohmann/json.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace rm {

struct MetaPeer {
  std::string id;            // node id, "control-1"
  uint64_t raft_id = 0;      // founders: 1-based position in the --control-nodes list
  std::string http_address;  // host:port of its HTTP API
  std::string raft_address;  // host:port of its Raft port
};

// Parses --control-nodes: "host:port[@raft_port],..." (raft port default: HTTP
// port + 1000). Every control node must be given the same list in the same order.
Result<std::vector<MetaPeer>> ParseControlNodes(const std::string& text);
// The Raft address of a control node at `http_address` (host:port): the same
// host, on `raft_port`, or on the HTTP port + 1000 when raft_port < 0 (the
// default of --raft-port). `http_address` must be host:port (IsHostPort).
std::string ControlRaftAddress(const std::string& http_address, int raft_port = -1);
// The Raft id of a control node that joins at run time: a hash of its HTTP
// address, above the founders' small ids, so both sides compute it alone.
uint64_t JoinedControlRaftId(const std::string& http_address);

class MetaGroup : public raft::StateMachine {
 public:
  using MapCallback = std::function<void(const ClusterMap&)>;
  // `peers`: the founders (this node among them) or, for a node joining at run
  // time (`founder` false), whatever is known of the group so far (may be empty).
  MetaGroup(std::string dir, std::string listen_address, uint64_t self_id, std::string self_raft_address,
            std::vector<MetaPeer> peers, bool founder, MapCallback on_map);
  ~MetaGroup() override;

  Status Start();
  void Close();
  // On the leader: replicates `map` and returns once it is applied here.
  // kUnavailable elsewhere (details: leader_id) or when no quorum answers in time.
  Status Commit(const ClusterMap& map, std::chrono::milliseconds timeout);
  bool IsLeader();
  // The HTTP address of the leader ("" while none is known).
  std::string LeaderHttpAddress();
  // /status entry: group "meta", role, term, indexes, leader, last_heartbeat, peers.
  nlohmann::json StatusJson();
  uint64_t self_id() const { return self_id_; }
  // Whether any map has been applied (false: a new group, still to be seeded).
  bool HasMap();
  // The members as this node knows them.
  std::vector<MetaPeer> Peers();
  // On the leader: adds a control node (it catches up, then votes) / removes one.
  // kTimeout when not done in time (the change may still complete).
  Status AddMember(const MetaPeer& peer, std::chrono::milliseconds timeout);
  Status RemoveMember(uint64_t raft_id, std::chrono::milliseconds timeout);

 private:
  Status Apply(uint64_t index, std::string_view command) override;
  Result<std::string> Snapshot(uint64_t index) override;
  Status Restore(std::string_view snapshot) override;
  Status Adopt(std::string_view json);

  const std::string dir_;
  const std::string listen_;
  const uint64_t self_id_;
  const std::string self_raft_address_;
  const bool founder_;
  const std::vector<MetaPeer> founders_;
  const MapCallback on_map_;

  std::unique_ptr<raft::RaftLoop> loop_;
  std::unique_ptr<raft::RaftNetwork> network_;
  std::unique_ptr<raft::RaftGroup> group_;

  std::mutex mu_;
  std::string last_map_;  // JSON of the last applied map (the snapshot); guarded by mu_
  std::vector<MetaPeer> peers_;  // guarded by mu_: founders, then the map's control_nodes
};

}  // namespace rm
