#include "src/control/control_service.h"

#include "src/cluster/write_dispatcher.h"
#include "src/common/time_util.h"
#include "src/control/query_params.h"
#include "src/net/error_response.h"
#include "src/partition/partitioner.h"
#include "src/query/aggregate_merge.h"
#include "src/query/aggregate_spec.h"
#include "src/query/partial_aggregate.h"

#include <spdlog/spdlog.h>

#include <atomic>
#include <future>
#include <set>

namespace rm {

namespace pb = raftmetrics::v1;

namespace {

bool WantsProtobuf(const HttpRequest& req) {
  return req.Header("accept").find("application/x-protobuf") != std::string::npos;
}

}  // namespace

ControlService::ControlService(NodeConfig config, MetricsRegistry& metrics)
    : config_(std::move(config)),
      client_(),
      writes_(client_, config_.cluster_secret),
      workers_(config_, client_),
      rebalancer_(config_, workers_, client_, [this] { return meta_ && meta_->IsLeader(); }),
      points_inserted_(metrics.AddCounter("raftmetrics_points_inserted_total",
                                          "Points acknowledged to clients by this control node")),
      worker_up_(metrics.AddGauge("raftmetrics_worker_up", "1 if the worker answered its last health check",
                                  {"worker", "address"})),
      shard_leader_(metrics.AddGauge("raftmetrics_shard_leader",
                                     "1 for the node that leads each shard (standalone: its owner)",
                                     {"shard", "node"})),
      started_us_(NowMicros()) {
  metrics.AddCollector([this] { CollectMetrics(); });
}

void ControlService::CollectMetrics() {
  ClusterMap map = workers_.Snapshot();
  auto health = workers_.Health();
  worker_up_.Clear();
  for (const auto& w : map.workers()) {
    auto it = health.find(w.address);
    worker_up_.Set({w.id, w.address}, it != health.end() && it->second.healthy ? 1 : 0);
  }
  shard_leader_.Clear();
  for (uint32_t s = 0; map.assigned() && s < map.num_shards(); ++s) {
    if (const WorkerInfo* owner = map.Owner(s)) shard_leader_.Set({std::to_string(s), owner->id}, 1);
  }
}

nlohmann::json ControlService::StatsJson() {
  ClusterMap map = workers_.Snapshot();
  auto health = workers_.Health();
  nlohmann::json workers = nlohmann::json::array();
  for (const auto& w : map.workers()) {
    auto it = health.find(w.address);
    workers.push_back({{"id", w.id}, {"address", w.address},
                       {"healthy", it != health.end() && it->second.healthy}});
  }
  nlohmann::json shards = nlohmann::json::array();
  uint64_t total = 0;
  for (uint32_t s = 0; map.assigned() && s < map.num_shards(); ++s) {
    const WorkerInfo* owner = map.Owner(s);
    nlohmann::json points = nullptr;
    if (owner) {
      auto it = health.find(owner->address);
      if (it != health.end()) {
        const auto& report = it->second.last_report;
        auto key = std::to_string(s);
        if (report.contains("shard_points") && report["shard_points"].contains(key)) {
          points = report["shard_points"][key];
          total += points.get<uint64_t>();
        }
      }
    }
    shards.push_back({{"shard", s}, {"worker", owner ? owner->id : ""}, {"points", points}});
  }
  return {{"workers", workers}, {"points_stored", total}, {"shards", shards}};
}

ControlService::~ControlService() { Stop(); }

Status ControlService::Start() {
  // The meta group: the founders of --control-nodes, or this node alone. A
  // control node that the list does not name (or started with only
  // --control-host) joins the running group through those nodes instead.
  const int raft_port = config_.raft_port >= 0 ? config_.raft_port : config_.port + 1000;
  const std::string self_http =
      NormalizeAddress(config_.advertise.empty() ? "127.0.0.1:" + std::to_string(config_.port) : config_.advertise);
  const std::string self_raft = ControlRaftAddress(self_http, raft_port);
  std::vector<MetaPeer> peers;
  uint64_t self_id = 0;
  std::vector<std::string> join_via;
  if (!config_.control_nodes.empty()) {
    auto parsed = ParseControlNodes(config_.control_nodes);
    if (!parsed.ok()) return parsed.status();
    peers = std::move(*parsed);
    for (const auto& p : peers) {
      if (p.http_address == self_http) self_id = p.raft_id;
      join_via.push_back(p.http_address);
    }
    if (self_id != 0) join_via.clear();
  } else if (!config_.control_host.empty()) {
    join_via = SplitList(config_.control_host);
  } else {
    peers.push_back({"control-1", 1, self_http, self_raft});
    self_id = 1;
  }
  const bool founder = self_id != 0;
  if (!founder) self_id = JoinedControlRaftId(self_http);
  meta_ = std::make_unique<MetaGroup>(config_.db_path + "/meta", config_.bind + ":" + std::to_string(raft_port), self_id,
                                      self_raft, peers, founder, [this](const ClusterMap& m) { workers_.AdoptMap(m); });
  if (!founder) {
    spdlog::info("control node {} joins the meta group through {}", self_http, config_.control_nodes.empty()
                                                                                  ? config_.control_host
                                                                                  : config_.control_nodes);
    meta_join_ = std::make_unique<JoinAnnouncer>(JoinAnnouncer::Options{
        join_via,
        nlohmann::json{{"id", config_.node_id}, {"addr", self_http}, {"role", "control"}, {"raft_addr", self_raft}}
            .dump(),
        InternalHeaders(config_.cluster_secret), /*keep_announcing=*/false});
  }
  workers_.SetCommitter([this](const ClusterMap& m) { return meta_->Commit(m, std::chrono::seconds(5)); },
                        [this] { return meta_->IsLeader() && !meta_->HasMap(); });
  Status s = workers_.Start();
  if (!s.ok()) return s;
  s = meta_->Start();
  if (!s.ok()) return s;
  if (meta_join_) meta_join_->Start();  // after Start: the leader's AddMember needs us running
  rebalancer_.Start();
  return Status::Ok();
}

void ControlService::Stop() {
  if (meta_join_) meta_join_->Stop();
  rebalancer_.Stop();
  workers_.Stop();
  if (meta_) meta_->Close();
}

HttpResponse ControlService::ForwardToMetaLeader(HttpRequest& req) {
  const std::string leader = meta_ ? meta_->LeaderHttpAddress() : "";
  if (leader.empty()) {
    return ErrorResponse(Status(Code::kRaft, "No leader among the control nodes; retry shortly",
                                {{"group", "meta"}, {"retry_after", "1s"}}));
  }
  OutgoingRequest out;
  out.method = req.method;
  out.target = req.target;
  out.content_type = req.Header("content-type");
  out.body = req.body;
  out.headers = InternalHeaders(config_.cluster_secret);
  auto resp = client_.Send(leader, out, std::chrono::seconds(10));
  if (!resp.ok()) return ErrorResponse(resp.status());
  return *resp;
}

void ControlService::RegisterRoutes(Router& router) {
  router.Add("POST", "/insert", [this](HttpRequest& r) { return HandleWrite(r, InsertDialect::kInsert); });
  router.Add("POST", "/metrics", [this](HttpRequest& r) { return HandleWrite(r, InsertDialect::kMetrics); });
  router.Add("GET", "/analytics", [this](HttpRequest& r) { return HandleAnalytics(r); });
  router.Add("GET", "/aggregate", [this](HttpRequest& r) { return HandleAggregate(r); });
  router.Add("GET", "/health", [this](HttpRequest& r) { return HandleHealth(r); });
  router.Add("GET", "/status", [this](HttpRequest& r) { return HandleStatus(r); });
  router.Add("POST", "/join", [this](HttpRequest& r) { return HandleJoin(r); });
  router.Add("POST", "/remove", [this](HttpRequest& r) { return HandleRemove(r); });
}

HttpResponse ControlService::HandleWrite(HttpRequest& req, InsertDialect dialect) {
  const std::string* precision = req.Param("precision");  // the unit of epoch timestamps
  auto parsed = ParseInsertBody(req.body, req.Header("content-type"), dialect,
                                precision ? std::string_view(*precision) : std::string_view());
  if (!parsed.ok()) return ErrorResponse(parsed.status());
  ClusterMap map = workers_.Snapshot();
  if (!map.assigned()) {
    return ErrorResponse(Status(Code::kUnavailable, "Cluster is not ready: shards are not placed yet",
                                {{"workers_known", map.workers().size()}, {"retry_after", "1s"}}));
  }
  const int64_t now = NowMicros();
  const std::string& client_key = req.Header("idempotency-key");
  if (client_key.size() > 256) {
    return ErrorResponse(Status(Code::kValidation, "Invalid request parameters",
                                {{"fields", {{{"field", "Idempotency-Key"}, {"error", "longer than 256 bytes"}}}}}));
  }
  CommandOptions options;
  options.now_us = now;
  // Client keys are remembered for a day; our own only long enough to cover retries.
  options.idempotency_key = client_key.empty() ? AutoIdempotencyKey(config_.node_id) : "client:" + client_key;
  options.key_expires_us = now + (client_key.empty() ? 600LL : config_.idempotency_ttl_s) * 1000000LL;
  const bool is_batch = parsed->is_batch;
  auto commands = SplitIntoShardCommands(std::move(*parsed), map.num_shards(), options);
  WriteSummary summary = DispatchWrites(
      map, std::move(commands), writes_, std::chrono::milliseconds(config_.write_timeout_ms), "", nullptr,
      [&](uint32_t shard) { return workers_.ReadTarget(map, shard); },  // the leader when known
      [this](uint32_t shard, const std::string& id) { workers_.SetLeaderHint(shard, id); },
      [this](const WorkerInfo& w) { return workers_.Healthy(w); });
  if (!summary.all_ok()) {
    for (const auto& o : summary.shards) {
      if (o.ok) continue;
      auto view = workers_.Quorum(map, o.shard);
      summary.available_nodes = summary.available_nodes < 0
                                    ? view.healthy_replicas
                                    : std::min<int64_t>(summary.available_nodes, view.healthy_replicas);
      summary.known_term = std::max(summary.known_term, view.term);
    }
    spdlog::warn("write not stored on every shard: {}", summary.DescribeFailures());
    return ErrorResponse(summary.FailureStatus(client_key.empty() ? "" : client_key));
  }
  uint64_t fresh = 0;  // a retried key's points were counted the first time
  for (const auto& o : summary.shards) {
    fresh += o.duplicate ? 0 : o.stored;
    // The replica that applied a replicated write leads its shard: reads that
    // follow go there, not to a leader from an older health report.
    if (map.replication_factor() >= 2 && !o.worker_id.empty()) workers_.SetLeaderHint(o.shard, o.worker_id);
  }
  points_inserted_.Add({}, static_cast<double>(fresh));
  pb::InsertResponse out;
  out.set_success(true);
  out.set_inserted(summary.stored_points);
  if (is_batch) {
    out.set_message("Metrics inserted successfully");
    out.set_partition(-1);
  } else {
    out.set_message("Metric inserted successfully");
    out.set_partition(static_cast<int32_t>(summary.shards[0].shard));
    out.set_worker_node(summary.shards[0].worker_id);
  }
  if (WantsProtobuf(req)) {
    HttpResponse r;
    r.content_type = "application/x-protobuf";
    r.body = out.SerializeAsString();
    return r;
  }
  nlohmann::json body = {{"success", true}, {"message", out.message()}};
  if (is_batch) {
    body["inserted"] = out.inserted();
  } else {
    body["worker_node"] = out.worker_node();
    body["partition"] = out.partition();
  }
  bool duplicate = true;
  for (const auto& s : summary.shards) duplicate = duplicate && s.duplicate;
  if (duplicate) body["duplicate"] = true;
  return HttpResponse::Json(200, body.dump());
}

template <typename Message>
ControlService::Gathered ControlService::ScatterGather(
    const ClusterMap& map, const std::string& target, ReadConsistency consistency, const BodyFn& make_body,
    const char* what, const std::function<void(const Message&, std::set<uint32_t>&)>& take) {
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + std::chrono::milliseconds(config_.query_timeout_ms);
  Gathered out;
  out.total_nodes = static_cast<uint32_t>(map.workers().size());
  std::set<std::string> answered_by;                   // workers that answered at least once
  std::map<uint32_t, std::set<std::string>> tried;     // shard -> workers asked
  std::set<uint32_t> answered;                         // shards covered
  // Round one: each shard's leader when known (any replica for none).
  std::map<std::string, std::vector<uint32_t>> ask;    // worker id -> shards
  for (uint32_t s = 0; map.assigned() && s < map.num_shards(); ++s) {
    const WorkerInfo* w = consistency == ReadConsistency::kNone ? workers_.AnyHealthyReplica(map, s)
                                                                : workers_.ReadTarget(map, s);
    if (w) ask[w->id].push_back(s);
  }
  bool leader_read = consistency == ReadConsistency::kWeak;
  for (int round = 0;; ++round) {
    // Every worker is asked in round one, also with no shards: the answer
    // counts it as responding (total_nodes / responding_nodes).
    std::vector<std::pair<const WorkerInfo*, std::vector<uint32_t>>> requests;
    for (const auto& w : map.workers()) {
      auto it = ask.find(w.id);
      if (round == 0 || it != ask.end()) requests.emplace_back(&w, it == ask.end() ? std::vector<uint32_t>{} : it->second);
    }
    const auto budget = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    std::vector<std::future<Result<HttpResponse>>> pending;
    for (const auto& [w, shards] : requests) {
      for (uint32_t s : shards) tried[s].insert(w->id);
      OutgoingRequest req;
      req.method = "POST";
      req.target = target;
      req.content_type = "application/x-protobuf";
      req.headers = InternalHeaders(config_.cluster_secret);
      req.body = make_body(shards, leader_read);
      pending.push_back(client_.Start(w->address, std::move(req), std::max(budget, std::chrono::milliseconds(1))));
    }
    for (size_t i = 0; i < requests.size(); ++i) {
      Result<HttpResponse> resp = pending[i].get();
      const WorkerInfo* w = requests[i].first;
      Message parsed;
      if (resp.ok() && resp->status == 200 && parsed.ParseFromString(resp->body)) {
        answered_by.insert(w->id);
        std::set<uint32_t> covered;
        take(parsed, covered);
        answered.insert(covered.begin(), covered.end());
      } else if (resp.ok() && resp->status == 400 && !out.refused) {
        out.refused = *resp;
      } else if (!resp.ok() || resp->status != 200) {
        spdlog::warn("{}: worker {} did not answer: {}", what, w->id,
                     resp.ok() ? "HTTP " + std::to_string(resp->status) : resp.status().message());
      }
    }
    if (out.refused) break;
    // The next round: each shard still missing, from a replica not asked yet
    // (the leader hint first, then healthy ones).
    ask.clear();
    for (uint32_t s = 0; map.assigned() && s < map.num_shards(); ++s) {
      if (answered.count(s)) continue;
      const std::string hint = workers_.LeaderHint(s);
      const WorkerInfo* next = nullptr;
      for (const WorkerInfo* r : map.Replicas(s)) {
        if (tried[s].count(r->id)) continue;
        if (!next || r->id == hint) next = r;
      }
      if (next) ask[next->id].push_back(s);
    }
    if (ask.empty() && leader_read) {
      // No leader answered for these shards (an election): any replica that
      // answered this query.
      leader_read = false;
      for (uint32_t s = 0; map.assigned() && s < map.num_shards(); ++s) {
        if (answered.count(s)) continue;
        for (const WorkerInfo* r : map.Replicas(s)) {
          if (answered_by.count(r->id)) {
            ask[r->id].push_back(s);
            break;
          }
        }
      }
    }
    if (ask.empty() || Clock::now() + std::chrono::milliseconds(20) >= deadline) break;
  }
  out.responding = static_cast<uint32_t>(answered_by.size());
  for (uint32_t s = 0; map.assigned() && s < map.num_shards(); ++s) {
    if (!answered.count(s)) out.missing.push_back(s);
  }
  return out;
}

HttpResponse ControlService::HandleAnalytics(HttpRequest& req) {
  auto params = ParseAnalyticsParams(req);
  if (!params.ok()) return ErrorResponse(params.status());
  ClusterMap map = workers_.Snapshot();
  if (!map.assigned()) {
    return ErrorResponse(Status(Code::kUnavailable, "Cluster is not ready: shards are not placed yet",
                                {{"retry_after", "1s"}}));
  }
  pb::ShardQuery base;
  base.set_metric(params->metric);
  base.set_partition_key(params->partition_key);
  base.set_skip_min_max(true);  // the answer is an average and a count
  if (params->from_us) {
    base.set_has_from(true);
    base.set_from_us(*params->from_us);
  }
  if (params->to_us) {
    base.set_has_to(true);
    base.set_to_us(*params->to_us);
  }
  base.set_strong_read(params->consistency == ReadConsistency::kStrong);
  PartialAggregate total;
  Gathered cov = ScatterGather<pb::ShardQueryResponse>(
      map, "/internal/query", params->consistency,
      [&](const std::vector<uint32_t>& shards, bool leader_read) {
        pb::ShardQuery q = base;
        q.set_leader_read(leader_read);
        for (uint32_t s : shards) q.add_shards(s);
        return q.SerializeAsString();
      },
      "analytics",
      [&](const pb::ShardQueryResponse& parsed, std::set<uint32_t>& answered) {
        for (const auto& p : parsed.partials()) {
          PartialAggregate a{p.aggregate().count(), p.aggregate().sum(), p.aggregate().min(), p.aggregate().max()};
          if (a.count > 0) total.Merge(a);
          answered.insert(p.shard());
        }
      });
  if (cov.refused) return *cov.refused;
  const std::vector<uint32_t>& missing = cov.missing;
  const uint32_t responding = cov.responding;
  if (responding == 0) {
    return ErrorResponse(Status(Code::kUnavailable, "No worker answered",
                                {{"total_nodes", cov.total_nodes}, {"responding_nodes", 0},
                                 {"missing_shards", missing}, {"retry_after", "1s"}}));
  }
  const bool partial = !missing.empty();
  if (WantsProtobuf(req)) {
    pb::AnalyticsResponse out;
    out.set_has_average(total.count > 0);
    out.set_average(total.count ? *total.Average() : 0);
    out.set_is_partial(partial);
    out.set_total_nodes(cov.total_nodes);
    out.set_responding_nodes(responding);
    for (uint32_t s : missing) out.add_missing_shards(s);
    out.set_count(total.count);
    HttpResponse r;
    r.content_type = "application/x-protobuf";
    r.body = out.SerializeAsString();
    return r;
  }
  nlohmann::json body = {
      {"average", total.count ? nlohmann::json(*total.Average()) : nlohmann::json(nullptr)},
      {"count", total.count},
      {"is_partial", partial},
      {"total_nodes", cov.total_nodes},
      {"responding_nodes", responding},
      {"missing_shards", missing},
  };
  return HttpResponse::Json(200, body.dump());
}

HttpResponse ControlService::HandleAggregate(HttpRequest& req) {
  auto spec = ParseAggregateParams(req.query, NowMicros());
  if (!spec.ok()) return ErrorResponse(spec.status());
  ClusterMap map = workers_.Snapshot();
  if (!map.assigned()) {
    return ErrorResponse(Status(Code::kUnavailable, "Cluster is not ready: shards are not placed yet",
                                {{"retry_after", "1s"}}));
  }
  AggregateMerger merger(*spec);
  Gathered cov = ScatterGather<pb::AggregateResponse>(
      map, "/internal/aggregate", spec->consistency,
      [&](const std::vector<uint32_t>& shards, bool leader_read) {
        pb::AggregateQuery q = spec->query;
        q.set_leader_read(leader_read);
        for (uint32_t s : shards) q.add_shards(s);
        return q.SerializeAsString();
      },
      "aggregate",
      [&](const pb::AggregateResponse& parsed, std::set<uint32_t>& answered) {
        for (const auto& shard : parsed.shards()) {
          merger.Add(shard);
          answered.insert(shard.shard());
        }
      });
  // The query itself is refused (too many groups, exact cap): same answer from every shard.
  if (cov.refused) return *cov.refused;
  const std::vector<uint32_t>& missing = cov.missing;
  const uint32_t responding = cov.responding;
  if (responding == 0 || (spec->deny_partial && !missing.empty())) {
    return ErrorResponse(Status(Code::kUnavailable,
                                responding == 0 ? "No worker answered" : "Partial result denied (partial=deny)",
                                {{"total_nodes", cov.total_nodes}, {"responding_nodes", responding},
                                 {"missing_shards", missing}, {"retry_after", "1s"}}));
  }
  auto body = merger.Finish();
  if (!body.ok()) return ErrorResponse(body.status());
  nlohmann::json warnings = merger.Warnings();
  if (!missing.empty() && merger.PointsInRange() == 0 && !warnings.empty()) {
    warnings.push_back(std::to_string(missing.size()) + " shard(s) did not answer: their points may be missing");
  }
  (*body)["warnings"] = warnings;
  (*body)["is_partial"] = !missing.empty();
  (*body)["total_nodes"] = cov.total_nodes;
  (*body)["responding_nodes"] = responding;
  (*body)["missing_shards"] = missing;
  return HttpResponse::Json(200, body->dump());
}

HttpResponse ControlService::HandleStatus(HttpRequest&) {
  ClusterMap map = workers_.Snapshot();
  nlohmann::json shards = nlohmann::json::array();
  for (uint32_t s = 0; map.assigned() && s < map.num_shards(); ++s) {
    nlohmann::json replicas = nlohmann::json::array();
    for (const WorkerInfo* w : map.Replicas(s)) replicas.push_back(w->id);
    const WorkerInfo* owner = map.Owner(s);
    std::string leader = map.replication_factor() > 1 ? workers_.LeaderHint(s) : (owner ? owner->id : "");
    nlohmann::json entry = {{"shard", s}, {"replicas", replicas}, {"leader", leader}};
    if (const ReplicaMove* m = map.PendingMove(s)) {
      entry["moving"] = {{"from", m->from}, {"to", m->to}, {"reason", m->reason}};
    }
    shards.push_back(std::move(entry));
  }
  nlohmann::json groups = nlohmann::json::array();
  groups.push_back(meta_->StatusJson());
  nlohmann::json body = {{"node_id", config_.node_id},
                         {"role", "control"},
                         {"replication_factor", map.replication_factor()},
                         {"groups", groups},
                         {"shards", shards},
                         {"decommissioning", map.decommissioning_workers()},
                         {"removed_workers", map.removed_workers()},
                         {"rebalancing", rebalancer_.StatusJson()}};
  return HttpResponse::Json(200, body.dump());
}

HttpResponse ControlService::HandleRemove(HttpRequest& req) {
  auto body = nlohmann::json::parse(req.body, nullptr, false);
  if (body.is_discarded() || !body.is_object()) {
    return ErrorResponse(Status(Code::kInvalidRequest, "Malformed JSON", {{"reason", "body must be a JSON object"}}));
  }
  if (!body.contains("id") || !body["id"].is_string() || body["id"].get<std::string>().empty()) {
    return ErrorResponse(Status(Code::kValidation, "Invalid request parameters",
                                {{"fields", {{{"field", "id"}, {"error", "is required (a non-empty string)"}}}}}));
  }
  if (meta_ && !meta_->IsLeader()) return ForwardToMetaLeader(req);
  if (body["id"].get<std::string>().rfind("control-", 0) == 0) return RemoveControlNode(body["id"].get<std::string>());
  const std::string id = NormalizeNodeId("worker", body["id"].get<std::string>());
  ClusterMap map = workers_.Snapshot();
  if (!map.FindWorker(id)) {
    if (map.removed(id)) {
      return HttpResponse::Json(200, nlohmann::json{{"success", true}, {"id", id}, {"status", "removed"}}.dump());
    }
    return ErrorResponse(Status(Code::kNotFound, "No worker " + id + " in the cluster", {{"id", id}}));
  }
  const auto hosted = map.HostedBy(id);
  if (!hosted.empty()) {
    // Its replicas move first, which needs Raft groups and somewhere to go.
    size_t others = 0;
    for (const auto& w : map.workers()) others += w.id != id && !w.id.empty() && !map.decommissioning(w.id) ? 1 : 0;
    std::string why;
    if (map.replication_factor() < 2) {
      why = "its shards have a single copy (replication factor 1) and cannot move";
    } else if (others < map.replication_factor()) {
      why = "the other " + std::to_string(others) + " workers cannot hold " +
            std::to_string(map.replication_factor()) + " replicas of every shard";
    }
    if (!why.empty()) {
      return ErrorResponse(Status(Code::kValidation, "Invalid request parameters",
                                  {{"fields", {{{"field", "id"}, {"error", "worker " + id + " cannot be removed: " + why}}}}}));
    }
  }
  auto after = workers_.UpdateMap([&](ClusterMap& m) {
    if (m.HostedBy(id).empty()) return m.RemoveWorker(id).ok();
    if (m.decommissioning(id)) return false;
    m.SetDecommissioning(id);
    return true;
  });
  if (!after.ok()) return ErrorResponse(after.status());
  rebalancer_.Poke();
  const bool gone = after->FindWorker(id) == nullptr;
  spdlog::info("worker {} {}", id, gone ? "removed" : "is being decommissioned");
  return HttpResponse::Json(200, nlohmann::json{{"success", true},
                                                {"id", id},
                                                {"status", gone ? "removed" : "decommissioning"},
                                                {"replicas_to_move", gone ? 0 : after->HostedBy(id).size()},
                                                {"cluster_map_version", after->version()}}
                                     .dump());
}

HttpResponse ControlService::HandleHealth(HttpRequest&) {
  ClusterMap map = workers_.Snapshot();
  auto health = workers_.Health();
  size_t healthy = 0;
  nlohmann::json workers = nlohmann::json::array();
  for (const auto& w : map.workers()) {
    auto it = health.find(w.address);
    bool up = it != health.end() && it->second.healthy;
    healthy += up ? 1 : 0;
    workers.push_back({{"id", w.id}, {"address", w.address}, {"healthy", up},
                       {"state", map.decommissioning(w.id) ? "decommissioning" : "active"},
                       {"shards", map.ShardsOf(w.id)},
                       {"last_seen", it != health.end() && it->second.last_ok_us
                                         ? nlohmann::json(FormatIso8601(it->second.last_ok_us))
                                         : nlohmann::json(nullptr)}});
  }
  const int64_t uptime_s = (NowMicros() - started_us_) / 1000000;
  // 200 only once a write would be taken: a health check that waits for 200
  // may insert right after. Later elections leave it 200 ("degraded") rather
  // than failing the checks of a node that serves.
  std::string status;
  std::string reason;
  nlohmann::json leaderless = nlohmann::json::array();
  nlohmann::json unreachable = nlohmann::json::array();
  bool ready = false;
  if (!map.assigned()) {
    status = "starting";
    size_t known = 0;
    for (const auto& w : map.workers()) known += w.id.empty() ? 0 : 1;
    reason = "shards are not placed yet (" + std::to_string(known) + " worker(s) known)";
  } else {
    auto writable = workers_.WritableShards(map);
    for (uint32_t s : writable.leaderless) leaderless.push_back(s);
    for (uint32_t s : writable.unreachable) unreachable.push_back(s);
    // A shard that stays leaderless (its quorum lost) must not keep a control
    // node that restarts meanwhile "starting" for ever: after kLeaderWait the
    // others serve, and it is reported as degraded.
    const bool was_ready = ready_once_.load() || NowMicros() - started_us_ > kLeaderWaitUs;
    ready = writable.writable > 0 && (writable.leaderless.empty() || was_ready);
    if (ready && !ready_once_.load()) ready_once_.store(true);
    if (!ready) {
      status = writable.writable == 0 && was_ready ? "unavailable" : "starting";
      reason = !writable.leaderless.empty()
                   ? std::to_string(writable.leaderless.size()) + " shard(s) have no Raft leader yet"
                   : "no worker holding a shard answers";
    } else if (healthy == map.workers().size() && writable.leaderless.empty() && writable.unreachable.empty()) {
      status = "healthy";
    } else {
      status = "degraded";
      reason = std::to_string(writable.leaderless.size() + writable.unreachable.size()) +
               " shard(s) cannot take writes now";
    }
  }
  nlohmann::json body = {
      {"status", status},
      {"node_id", config_.node_id},
      {"role", "control"},
      {"uptime", FormatUptime(uptime_s)},
      {"uptime_seconds", uptime_s},
      {"worker_nodes", {{"total", map.workers().size()}, {"healthy", healthy}}},
      {"workers", workers},
      {"shards", map.num_shards()},
      {"replication_factor", map.assigned() ? map.replication_factor() : config_.replication_factor},
      {"cluster_ready", ready},
      {"shards_without_leader", leaderless},
      {"shards_unreachable", unreachable},
      {"raft_status", [&] {
         nlohmann::json st = meta_->StatusJson();
         return nlohmann::json{{"role", st["role"]}, {"term", st["term"]}, {"last_log_index", st["last_log_index"]},
                               {"commit_index", st["commit_index"]}, {"leader_id", st["leader_id"]},
                               {"last_heartbeat", st["last_heartbeat"]}, {"group", "meta"}};
       }()},
  };
  if (!reason.empty()) body["reason"] = reason;
  return HttpResponse::Json(ready ? 200 : 503, body.dump());
}

HttpResponse ControlService::HandleJoin(HttpRequest& req) {
  auto body = nlohmann::json::parse(req.body, nullptr, false);
  if (body.is_discarded() || !body.is_object()) {
    return ErrorResponse(Status(Code::kInvalidRequest, "Malformed JSON", {{"reason", "body must be a JSON object"}}));
  }
  nlohmann::json errors = nlohmann::json::array();
  auto text = [&](const char* f) -> std::string {
    if (!body.contains(f) || !body[f].is_string() || body[f].get<std::string>().empty()) {
      errors.push_back({{"field", f}, {"error", "is required (a non-empty string)"}});
      return "";
    }
    return body[f].get<std::string>();
  };
  if (meta_ && !meta_->IsLeader()) return ForwardToMetaLeader(req);
  std::string id = text("id");
  std::string addr = text("addr");
  std::string role = "worker";
  if (body.contains("role") && (!body["role"].is_string() ||
                                (body["role"] != "worker" && body["role"] != "control"))) {
    errors.push_back({{"field", "role"}, {"error", "must be \"worker\" or \"control\""}});
  } else if (body.contains("role")) {
    role = body["role"].get<std::string>();
  }
  if (!addr.empty() && !IsHostPort(addr)) {
    errors.push_back({{"field", "addr"}, {"error", "must be host:port"}});
  }
  std::string raft_addr;
  if (role == "control" && body.contains("raft_addr")) {
    if (!body["raft_addr"].is_string() || !IsHostPort(body["raft_addr"].get<std::string>())) {
      errors.push_back({{"field", "raft_addr"}, {"error", "must be host:port"}});
    } else {
      raft_addr = NormalizeAddress(body["raft_addr"].get<std::string>());
    }
  }
  if (!errors.empty()) return ErrorResponse(Status(Code::kValidation, "Invalid request parameters", {{"fields", errors}}));
  if (role == "control") return JoinControlNode(id, addr, raft_addr);
  auto version = workers_.Join(id, addr);
  if (!version.ok()) return ErrorResponse(version.status());
  rebalancer_.Poke();  // a new worker may take replicas
  return HttpResponse::Json(200, nlohmann::json{{"success", true}, {"id", id}, {"cluster_map_version", *version}}.dump());
}

namespace {
// The map's record of the meta group's members after `change`, starting from
// what this node knows (the founders until membership first changed).
std::vector<ControlNodeInfo> ControlNodesFrom(const std::vector<MetaPeer>& peers) {
  std::vector<ControlNodeInfo> nodes;
  for (const auto& p : peers) nodes.push_back({p.id, p.http_address, p.raft_id, p.raft_address});
  return nodes;
}
}  // namespace

HttpResponse ControlService::JoinControlNode(const std::string& id, const std::string& addr, std::string raft_addr) {
  const std::string node_id = NormalizeNodeId("control", id);
  const std::string http = NormalizeAddress(addr);
  if (raft_addr.empty()) raft_addr = ControlRaftAddress(http);
  const std::vector<MetaPeer> peers = meta_->Peers();
  for (const auto& p : peers) {
    if (p.http_address == http && p.id == node_id) {  // a repeated announcement
      return HttpResponse::Json(200, nlohmann::json{{"success", true}, {"id", node_id}, {"role", "control"},
                                                    {"raft_id", p.raft_id}, {"status", "member"}}
                                         .dump());
    }
    if (p.id == node_id || p.http_address == http) {
      return ErrorResponse(Status(Code::kValidation, "Invalid request parameters",
                                  {{"fields", {{{"field", p.id == node_id ? "id" : "addr"},
                                                {"error", "already used by control node " + p.id + " (" +
                                                              p.http_address + ")"}}}}}));
    }
  }
  const MetaPeer peer{node_id, JoinedControlRaftId(http), http, raft_addr};
  // The new node catches up from the leader's log or snapshot, then votes.
  Status s = meta_->AddMember(peer, std::chrono::seconds(10));
  if (!s.ok()) {
    return ErrorResponse(Status(Code::kRaft, "Control node " + node_id + " could not be added to the meta group: " +
                                                 s.message() + " (is it running, with its Raft port reachable?)",
                                {{"group", "meta"}, {"raft_address", raft_addr}, {"retry_after", "1s"}}));
  }
  auto map = workers_.UpdateMap([&](ClusterMap& m) {
    auto nodes = ControlNodesFrom(peers);
    nodes.push_back({peer.id, peer.http_address, peer.raft_id, peer.raft_address});
    return m.SetControlNodes(std::move(nodes));
  });
  if (!map.ok()) return ErrorResponse(map.status());
  spdlog::info("control node {} ({}) joined the meta group as Raft id {}", node_id, http, peer.raft_id);
  return HttpResponse::Json(200, nlohmann::json{{"success", true},
                                                {"id", node_id},
                                                {"role", "control"},
                                                {"raft_id", peer.raft_id},
                                                {"status", "member"},
                                                {"cluster_map_version", map->version()}}
                                     .dump());
}

HttpResponse ControlService::RemoveControlNode(const std::string& id) {
  const std::vector<MetaPeer> peers = meta_->Peers();
  auto it = std::find_if(peers.begin(), peers.end(), [&](const MetaPeer& p) { return p.id == id; });
  if (it == peers.end()) {
    return ErrorResponse(Status(Code::kNotFound, "No control node " + id + " in the meta group", {{"id", id}}));
  }
  if (peers.size() == 1) {
    return ErrorResponse(Status(Code::kValidation, "Invalid request parameters",
                                {{"fields", {{{"field", "id"}, {"error", "the last control node cannot be removed"}}}}}));
  }
  const MetaPeer gone = *it;
  // The map first, so no node keeps routing to it; then the group's configuration.
  std::vector<MetaPeer> rest;
  for (const auto& p : peers) {
    if (p.id != id) rest.push_back(p);
  }
  auto map = workers_.UpdateMap([&](ClusterMap& m) { return m.SetControlNodes(ControlNodesFrom(rest)); });
  if (!map.ok()) return ErrorResponse(map.status());
  Status s = meta_->RemoveMember(gone.raft_id, std::chrono::seconds(10));
  if (!s.ok()) return ErrorResponse(Status(Code::kRaft, s.message(), {{"group", "meta"}, {"retry_after", "1s"}}));
  spdlog::info("control node {} ({}) left the meta group", gone.id, gone.http_address);
  return HttpResponse::Json(
      200, nlohmann::json{{"success", true}, {"id", gone.id}, {"role", "control"}, {"status", "removed"}}.dump());
}

}  // namespace rm
