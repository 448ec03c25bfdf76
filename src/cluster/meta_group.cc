#include "src/cluster/meta_group.h"

#include "src/cluster/node_config.h"
#include "src/common/hash.h"
#include "src/common/time_util.h"

#include <spdlog/spdlog.h>

namespace rm {

Result<std::vector<MetaPeer>> ParseControlNodes(const std::string& text) {
  std::vector<MetaPeer> peers;
  for (const auto& item : SplitList(text)) {
    MetaPeer p;
    p.raft_id = peers.size() + 1;
    p.id = "control-" + std::to_string(p.raft_id);
    std::string http = item;
    std::string raft_port;
    if (auto at = item.find('@'); at != std::string::npos) {
      http = item.substr(0, at);
      raft_port = item.substr(at + 1);
    }
    http = NormalizeAddress(http);
    // The Raft port, when given, must be a port too (checked as "h:<port>").
    if (!IsHostPort(http) || (!raft_port.empty() && !IsHostPort("h:" + raft_port)) ||
        std::stoi(http.substr(http.rfind(':') + 1)) + (raft_port.empty() ? 1000 : 0) > 65535) {
      return Status(Code::kValidation, "--control-nodes: \"" + item + "\" is not host:port[@raft_port]");
    }
    p.http_address = http;
    p.raft_address = ControlRaftAddress(http, raft_port.empty() ? -1 : std::stoi(raft_port));
    peers.push_back(std::move(p));
  }
  return peers;
}

std::string ControlRaftAddress(const std::string& http_address, int raft_port) {
  const auto colon = http_address.rfind(':');
  if (raft_port < 0) raft_port = std::stoi(http_address.substr(colon + 1)) + 1000;
  return http_address.substr(0, colon) + ":" + std::to_string(raft_port);
}

uint64_t JoinedControlRaftId(const std::string& http_address) {
  // Founders use 1..N; 2^20 + a 30-bit hash stays clear of them and exact in JSON.
  return (uint64_t{1} << 20) + StableHash(NormalizeAddress(http_address)) % (uint64_t{1} << 30);
}

MetaGroup::MetaGroup(std::string dir, std::string listen_address, uint64_t self_id, std::string self_raft_address,
                     std::vector<MetaPeer> peers, bool founder, MapCallback on_map)
    : dir_(std::move(dir)),
      listen_(std::move(listen_address)),
      self_id_(self_id),
      self_raft_address_(std::move(self_raft_address)),
      founder_(founder),
      founders_(founder ? peers : std::vector<MetaPeer>{}),
      on_map_(std::move(on_map)),
      peers_(std::move(peers)) {}

MetaGroup::~MetaGroup() { Close(); }

Status MetaGroup::Start() {
  loop_ = std::make_unique<raft::RaftLoop>();
  Status s = loop_->Start();
  if (!s.ok()) return s;
  network_ = std::make_unique<raft::RaftNetwork>(*loop_, listen_);
  s = network_->Start();
  if (!s.ok()) return s;
  raft::RaftGroupOptions o;
  o.id = self_id_;
  o.address = self_raft_address_;
  o.network = network_.get();
  o.group_id = 0;
  o.name = "meta group";
  o.dir = dir_;
  o.snapshot_threshold = 256;  // the map is small: keep the log short
  o.snapshot_trailing = 64;
  group_ = std::make_unique<raft::RaftGroup>(*loop_, o, *this);
  // Only founders bootstrap; a node joining at run time starts empty and is
  // brought up to date by the leader once it is added.
  std::vector<raft::RaftPeer> bootstrap;
  for (const auto& p : founders_) bootstrap.push_back({p.raft_id, p.raft_address});
  s = group_->Start(bootstrap);
  if (s.ok()) {
    spdlog::info("meta group: control node (Raft id {}) on {}, {}", self_id_, o.address,
                 founder_ ? "one of " + std::to_string(founders_.size()) + " founders" : "joining at run time");
  }
  return s;
}

void MetaGroup::Close() {
  if (group_) group_->Close();
  if (network_) network_->Close();
  if (loop_) loop_->Stop();
  group_.reset();
  network_.reset();
  loop_.reset();
}

Status MetaGroup::Adopt(std::string_view json) {
  auto parsed = nlohmann::json::parse(json, nullptr, false);
  auto map = ClusterMap::FromJson(parsed);
  if (!map.ok()) return map.status();
  {
    std::lock_guard<std::mutex> lock(mu_);
    last_map_ = std::string(json);
    if (!map->control_nodes().empty()) {
      peers_.clear();
      for (const auto& c : map->control_nodes()) peers_.push_back({c.id, c.raft_id, c.address, c.raft_address});
    }
  }
  on_map_(*map);
  return Status::Ok();
}

Status MetaGroup::Apply(uint64_t index, std::string_view command) {
  Status s = Adopt(command);
  if (!s.ok()) spdlog::error("meta group: entry {} is not a cluster map: {}", index, s.ToString());
  return Status::Ok();  // a bad entry is skipped on every node alike
}

Result<std::string> MetaGroup::Snapshot(uint64_t) {
  std::lock_guard<std::mutex> lock(mu_);
  return last_map_;  // applied synchronously: always the state at the snapshot's index
}

Status MetaGroup::Restore(std::string_view snapshot) {
  if (snapshot.empty()) return Status::Ok();
  return Adopt(snapshot);
}

Status MetaGroup::Commit(const ClusterMap& map, std::chrono::milliseconds timeout) {
  if (!group_) return Status(Code::kUnavailable, "meta group is not running");
  auto done = group_->Propose(map.ToJson().dump());
  if (done.wait_for(timeout) != std::future_status::ready) {
    return Status(Code::kRaft, "the control nodes did not commit the cluster map change in time");
  }
  auto index = done.get();
  return index.ok() ? Status::Ok() : index.status();
}

bool MetaGroup::HasMap() {
  std::lock_guard<std::mutex> lock(mu_);
  return !last_map_.empty();
}

bool MetaGroup::IsLeader() { return group_ && group_->GetStatus().role == "leader"; }

std::vector<MetaPeer> MetaGroup::Peers() {
  std::lock_guard<std::mutex> lock(mu_);
  return peers_;
}

Status MetaGroup::AddMember(const MetaPeer& peer, std::chrono::milliseconds timeout) {
  if (!group_) return Status(Code::kUnavailable, "meta group is not running");
  return raft::AwaitChange(group_->AddVoter(peer.raft_id, peer.raft_address), timeout,
                    "adding control node " + peer.id + " to the meta group");
}

Status MetaGroup::RemoveMember(uint64_t raft_id, std::chrono::milliseconds timeout) {
  if (!group_) return Status(Code::kUnavailable, "meta group is not running");
  // No hand-over: a meta leader removing itself answers the request itself
  // (POST /remove must not turn into "ask the other node"); map changes wait
  // out the election that follows, which is rare and short.
  return raft::AwaitChange(group_->RemoveMember(raft_id, /*hand_over=*/false), timeout,
                    "removing Raft id " + std::to_string(raft_id) + " from the meta group");
}

std::string MetaGroup::LeaderHttpAddress() {
  if (!group_) return "";
  const uint64_t leader = group_->GetStatus().leader_id;
  for (const auto& p : Peers()) {
    if (p.raft_id == leader) return p.http_address;
  }
  return "";
}

nlohmann::json MetaGroup::StatusJson() {
  raft::RaftStatus st;
  st.role = "unavailable";
  if (group_) st = group_->GetStatus();
  std::string leader;
  nlohmann::json peers = nlohmann::json::array();
  for (const auto& p : Peers()) {
    peers.push_back({{"id", p.id}, {"raft_id", p.raft_id}, {"address", p.http_address},
                     {"raft_address", p.raft_address}});
    if (p.raft_id == st.leader_id) leader = p.id;
  }
  return {{"group", "meta"},
          {"role", st.role},
          {"term", st.term},
          {"commit_index", st.commit_index},
          {"applied_index", st.last_applied},
          {"last_log_index", st.last_log_index},
          {"leader_id", leader},
          {"leader_address", LeaderHttpAddress()},
          {"last_heartbeat", st.last_contact_ms >= 0
                                 ? nlohmann::json(FormatIso8601(NowMicros() - st.last_contact_ms * 1000))
                                 : nlohmann::json(nullptr)},
          {"peers", peers},
          {"voters", group_ ? group_->Voters() : std::vector<uint64_t>{}}};
}

}  // namespace rm
