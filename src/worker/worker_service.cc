#include "src/worker/worker_service.h"

#include "src/worker/worker_responses.h"

#include "src/cluster/write_dispatcher.h"
#include "src/common/time_util.h"
#include "src/net/error_response.h"
#include "src/partition/partitioner.h"
#include "src/query/aggregate_merge.h"
#include "src/query/aggregate_spec.h"
#include "src/query/aggregation.h"
#include "src/wire/point_parser.h"

#include <spdlog/spdlog.h>
#include <sys/statvfs.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <future>
#include <limits>
#include <set>

namespace rm {

namespace pb = raftmetrics::v1;


WorkerService::WorkerService(NodeConfig config, MetricsRegistry& metrics)
    : config_(std::move(config)),
      shards_(config_.db_path, [&] {
        ShardStoreOptions o;
        o.duckdb_threads = config_.duckdb_threads;
        o.memory_limit = config_.shard_memory_limit;
        o.rollup_min_points = config_.rollup_min_points;
        o.hourly_totals_cells = config_.hourly_totals_cells;
        o.write_buffer_points = config_.write_buffer_points;
        return o;
      }()),
      points_inserted_(metrics.AddCounter("raftmetrics_points_inserted_total",
                                          "Points stored by this worker's shards (first application only)")),
      storage_bytes_(metrics.AddGauge("raftmetrics_storage_bytes", "Bytes of each shard's DuckDB file and WAL",
                                      {"shard"})),
      shard_points_(metrics.AddGauge("raftmetrics_shard_points", "Points stored in each shard", {"shard"})),
      shard_leader_(metrics.AddGauge("raftmetrics_shard_leader",
                                     "1 for each shard this node leads (standalone: every shard it holds)",
                                     {"shard", "node"})),
      free_bytes_(metrics.AddGauge("raftmetrics_storage_free_bytes", "Free bytes on the DB_PATH file system")),
      raft_term_(metrics.AddGauge("raftmetrics_raft_term", "Current Raft term of each shard group on this node "
                                  "(each increase is an election)", {"shard"})),
      raft_is_leader_(metrics.AddGauge("raftmetrics_raft_is_leader", "1 if this node leads the shard's group",
                                       {"shard"})),
      raft_commit_index_(metrics.AddGauge("raftmetrics_raft_commit_index", "Raft commit index per shard group",
                                          {"shard"})),
      raft_applied_index_(metrics.AddGauge("raftmetrics_raft_applied_index",
                                           "Last log index applied to the shard's DuckDB file", {"shard"})),
      raft_proposals_(metrics.AddCounter("raftmetrics_raft_proposals_total",
                                         "Writes proposed by this node as leader, by outcome", {"outcome"})),
      raft_commit_seconds_(metrics.AddHistogram("raftmetrics_raft_commit_seconds",
                                                "From proposal to commit on a majority and local apply", {},
                                                MetricsRegistry::LatencyBuckets())),
      raft_elections_(metrics.AddCounter("raftmetrics_raft_elections_total",
                                         "Elections seen by this node's shard groups (term increases)", {"shard"})),
      raft_snapshots_installed_(metrics.AddCounter("raftmetrics_raft_snapshots_installed_total",
                                                   "Snapshots a shard replica here installed from another replica",
                                                   {"shard"})),
      raft_role_(metrics.AddGauge("raftmetrics_raft_role", "1 for the role each shard group has on this node",
                                  {"shard", "role"})),
      client_(),
      writes_(client_, config_.cluster_secret),
      started_us_(NowMicros()) {
  metrics.AddCollector([this] { CollectMetrics(); });
}

Status WorkerService::Open() {
  Status s = shards_.OpenExisting();
  if (!s.ok()) return s;
  auto map = ClusterMap::Load(config_.db_path + "/cluster_map.json");
  if (!map.ok()) return map.status();
  if (*map) map_ = std::move(**map);
  return Status::Ok();
}

void WorkerService::StartRegistration(uint16_t port) {
  advertise_ = config_.advertise.empty() ? "127.0.0.1:" + std::to_string(port) : config_.advertise;
  const int raft_port = config_.raft_port >= 0 ? config_.raft_port : port + 1000;
  const std::string host = advertise_.substr(0, advertise_.rfind(':'));
  raft::RaftGroupOptions group_options;
  group_options.snapshot_threshold = config_.raft_snapshot_threshold;
  group_options.snapshot_trailing = config_.raft_snapshot_trailing;
  replica_host_ = std::make_unique<ReplicaHost>(
      config_.node_id, config_.bind + ":" + std::to_string(raft_port), host + ":" + std::to_string(raft_port),
      config_.db_path, shards_, group_options,
      [this](uint32_t shard, uint64_t min_index, uint64_t source_id) {
        return FetchSnapshot(shard, min_index, source_id);
      });
  // Requests are served already: publish the host (and advertise_) only now.
  replicas_.store(replica_host_.get(), std::memory_order_release);
  if (auto map = CurrentMap()) {
    replica_host_->Sync(*map);
    OpenOwnedShards(*map);
  }
  if (!config_.control_host.empty()) {
    // CONTROL_HOST may list several control nodes (the meta group).
    registration_ = std::make_unique<JoinAnnouncer>(JoinAnnouncer::Options{
        SplitList(config_.control_host),
        nlohmann::json{{"id", config_.node_id}, {"addr", advertise_}, {"role", "worker"}}.dump(),
        InternalHeaders(config_.cluster_secret), /*keep_announcing=*/true});
    registration_->Start();
  }
}

void WorkerService::Stop() {
  if (registration_) registration_->Stop();
  if (Replicas()) Replicas()->Close();
  // What waits in the shards' write buffers is safe in their command logs (or
  // Raft's), but a clean stop writes it to DuckDB, so the next start has
  // nothing to replay.
  for (ShardStore* store : shards_.All()) {
    Status s = store->Flush();
    if (!s.ok()) spdlog::warn("shard {}: write buffer not flushed at stop (the log keeps it): {}", store->shard(), s.ToString());
  }
}

void WorkerService::RegisterRoutes(Router& router) {
  router.Add("POST", "/insert", [this](HttpRequest& r) { return HandleInsert(r); });
  router.Add("POST", "/compute", [this](HttpRequest& r) { return HandleCompute(r); });
  router.Add("GET", "/health", [this](HttpRequest& r) { return HandleHealth(r); });
  router.Add("GET", "/status", [this](HttpRequest& r) { return HandleStatus(r); });
  router.Add("POST", "/internal/write", [this](HttpRequest& r) { return HandleInternalWrite(r); });
  router.Add("POST", "/internal/query", [this](HttpRequest& r) { return HandleInternalQuery(r); });
  router.Add("POST", "/internal/map", [this](HttpRequest& r) { return HandleInternalMap(r); });
  router.Add("POST", "/internal/aggregate", [this](HttpRequest& r) { return HandleInternalAggregate(r); });
  router.Add("GET", "/internal/snapshot", [this](HttpRequest& r) { return HandleInternalSnapshot(r); });
  router.Add("POST", "/internal/members", [this](HttpRequest& r) { return HandleInternalMembers(r); });
}

HttpResponse WorkerService::HandleInternalMembers(HttpRequest& req) {
  auto body = nlohmann::json::parse(req.body, nullptr, false);
  if (!body.is_object() || !body.contains("shard") || !body["shard"].is_number_unsigned() ||
      !body.contains("raft_id") || !body["raft_id"].is_number_unsigned() || body.value("op", "").empty()) {
    return ErrorResponse(Status(Code::kInvalidRequest, "expected {\"shard\",\"op\":\"add\"|\"remove\",\"raft_id\",\"address\"}"));
  }
  const uint32_t shard = body["shard"].get<uint32_t>();
  const uint64_t raft_id = body["raft_id"].get<uint64_t>();
  const std::string op = body["op"].get<std::string>();
  std::shared_ptr<raft::ShardReplica> replica = FindReplica(shard);
  if (!replica) return ErrorResponse(Status(Code::kNotFound, "no replica of shard " + std::to_string(shard) + " here"));
  Status s;
  if (op == "add") {
    const std::string address = body.value("address", "");
    if (address.empty()) return ErrorResponse(Status(Code::kInvalidRequest, "add needs the new replica's address"));
    // Catching up may take a snapshot transfer: allow for it.
    s = replica->AddVoter(raft_id, address, std::chrono::seconds(60));
  } else if (op == "remove") {
    s = replica->RemoveMember(raft_id, std::chrono::seconds(20));
  } else {
    return ErrorResponse(Status(Code::kInvalidRequest, "op must be add or remove"));
  }
  if (!s.ok()) return ErrorResponse(s);
  spdlog::info("shard {}: {} replica {} done", shard, op == "add" ? "adding" : "removing", raft_id);
  return JsonResponse({{"success", true}, {"shard", shard}, {"voters", replica->Voters()}});
}

Result<std::string> WorkerService::FetchSnapshot(uint32_t shard, uint64_t min_index, uint64_t source_id) {
  auto map = CurrentMap();
  if (!map) return Status(Code::kUnavailable, "no cluster map yet");
  // The replica that took the snapshot first (it has the index for sure), then
  // the other members of the shard's replica set.
  std::vector<const WorkerInfo*> candidates;
  for (const auto& w : map->workers()) {
    if (w.raft_id == source_id && w.id != config_.node_id) candidates.push_back(&w);
  }
  for (const WorkerInfo* w : map->Replicas(shard)) {
    if (w->id != config_.node_id && w->raft_id != source_id) candidates.push_back(w);
  }
  Status last(Code::kUnavailable, "no other replica of shard " + std::to_string(shard) + " is known");
  for (const WorkerInfo* w : candidates) {
    OutgoingRequest req;
    req.method = "GET";
    req.target = "/internal/snapshot?shard=" + std::to_string(shard) + "&min_index=" + std::to_string(min_index);
    req.headers = InternalHeaders(config_.cluster_secret);
    auto resp = client_.Send(w->address, req, std::chrono::milliseconds(60000));
    if (!resp.ok()) {
      last = resp.status();
    } else if (resp->status != 200) {
      last = Status(Code::kUnavailable, w->id + " answered HTTP " + std::to_string(resp->status) + ": " +
                                            resp->body.substr(0, 300));
    } else {
      spdlog::info("shard {}: fetched a {}-byte snapshot from {}", shard, resp->body.size(), w->id);
      return std::move(resp->body);
    }
  }
  return last;
}

HttpResponse WorkerService::HandleInternalSnapshot(HttpRequest& req) {
  uint64_t shard = 0, min_index = 0;
  const std::string* shard_text = req.Param("shard");
  const std::string* index_text = req.Param("min_index");
  try {
    if (!shard_text || !index_text) throw std::invalid_argument("missing");
    shard = std::stoull(*shard_text);
    min_index = std::stoull(*index_text);
  } catch (const std::exception&) {
    return ErrorResponse(Status(Code::kValidation, "shard and min_index must be non-negative integers"));
  }
  ShardStore* store = shards_.Find(static_cast<uint32_t>(shard));
  if (!store) return ErrorResponse(Status(Code::kNotFound, "shard " + std::to_string(shard) + " is not stored here"));
  // A replica slightly behind gets there in a moment; one far behind (or
  // installing a snapshot itself) answers 503 and the caller asks another.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (store->applied_index() < min_index && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (store->applied_index() < min_index) {
    return ErrorResponse(Status(Code::kUnavailable, "this replica has not applied that index",
                                {{"applied_index", store->applied_index()}, {"min_index", min_index}}));
  }
  auto blob = store->ExportSnapshot();
  if (!blob.ok()) return ErrorResponse(blob.status());
  HttpResponse r;
  r.content_type = "application/octet-stream";
  r.body = std::move(*blob);
  return r;
}

std::optional<ClusterMap> WorkerService::CurrentMap() {
  std::lock_guard<std::mutex> lock(map_mu_);
  return map_;
}

pb::ShardWriteResult WorkerService::ApplyLocal(const pb::ShardCommand& command) {
  auto map = CurrentMap();
  if (map && map->replication_factor() >= 2) return ApplyReplicated(*map, command);
  return std::move(ApplyStandalone(map ? &*map : nullptr, {&command}).front());
}

std::vector<pb::ShardWriteResult> WorkerService::ApplyStandalone(const ClusterMap* map,
                                                                 const std::vector<const pb::ShardCommand*>& commands) {
  const uint32_t shard = commands.front()->shard();
  std::vector<pb::ShardWriteResult> results(commands.size());
  for (auto& r : results) {
    r.set_shard(shard);
    r.set_ok(false);
  }
  const WorkerInfo* owner = map ? map->Owner(shard) : nullptr;
  if (!owner || owner->id != config_.node_id) {
    // Storing a shard we do not own would split its data over two workers.
    for (auto& r : results) {
      r.set_error("shard " + std::to_string(shard) + " is not held by " + config_.node_id);
      r.set_error_code("UNAVAILABLE");
    }
    return results;
  }
  auto fail = [&](pb::ShardWriteResult& r, const Status& st) {
    spdlog::error("shard {}: apply failed: {}", shard, st.ToString());
    r.set_error(st.ToString());
    r.set_error_code(ErrorCodeName(st.code()));
    if (st.code() == Code::kStorageFull) {
      r.set_disk_full(true);
      r.set_available_bytes(FreeBytes(config_.db_path));
    }
  };
  auto store = shards_.Get(shard);
  if (!store.ok()) {
    for (auto& r : results) fail(r, store.status());
    return results;
  }
  std::vector<Result<ApplyOutcome>> outcomes = (*store)->ApplyNext(commands);
  for (size_t i = 0; i < commands.size(); ++i) {
    if (!outcomes[i].ok()) {
      fail(results[i], outcomes[i].status());
      continue;
    }
    results[i].set_ok(true);
    if (!outcomes[i]->duplicate) points_inserted_.Add({}, static_cast<double>(outcomes[i]->stored));
    results[i].set_stored(outcomes[i]->stored);
    results[i].set_duplicate(outcomes[i]->duplicate);
  }
  return results;
}

pb::ShardWriteResult WorkerService::ApplyReplicated(const ClusterMap& map, const pb::ShardCommand& command) {
  pb::ShardWriteResult result;
  result.set_shard(command.shard());
  result.set_ok(false);
  std::shared_ptr<raft::ShardReplica> replica = FindReplica(command.shard());
  if (!replica) {
    // Not (or no longer, after a move) a replica here: like a follower, point
    // the caller at a replica this node's map knows, so its write goes on.
    result.set_error("shard " + std::to_string(command.shard()) + " has no running replica on " + config_.node_id);
    result.set_error_code("NOT_LEADER");
    for (const WorkerInfo* w : map.Replicas(command.shard())) {
      if (w->id != config_.node_id) {
        result.set_leader_hint(w->id);
        break;
      }
    }
    return result;
  }
  const auto started = std::chrono::steady_clock::now();
  Result<ApplyOutcome> outcome = replica->Write(command, std::chrono::milliseconds(config_.write_timeout_ms));
  const bool not_leader = !outcome.ok() && outcome.status().details().contains("leader_id");
  if (!not_leader) raft_proposals_.Add({outcome.ok() ? "ok" : "failed"});
  if (outcome.ok()) {
    raft_commit_seconds_.Observe({}, std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    result.set_ok(true);
    if (!outcome->duplicate) points_inserted_.Add({}, static_cast<double>(outcome->stored));
    result.set_stored(outcome->stored);
    result.set_duplicate(outcome->duplicate);
    return result;
  }
  const Status& st = outcome.status();
  result.set_error(st.ToString());
  if (st.details().contains("leader_id")) {
    // Not the leader: name the worker that is, so the caller can go there.
    result.set_error_code("NOT_LEADER");
    const uint64_t leader = st.details()["leader_id"].get<uint64_t>();
    for (const auto& w : map.workers()) {
      if (leader != 0 && w.raft_id == leader) result.set_leader_hint(w.id);
    }
  } else {
    result.set_error_code(st.code() == Code::kTimeout ? "RAFT_ERROR" : ErrorCodeName(st.code()));
    raft::RaftStatus rs = replica->GetStatus();
    result.set_term(rs.term);
  }
  return result;
}

HttpResponse WorkerService::HandleInsert(HttpRequest& req) {
  const std::string* precision = req.Param("precision");  // the unit of epoch timestamps
  auto parsed = ParseInsertBody(req.body, req.Header("content-type"), InsertDialect::kInsert,
                                precision ? std::string_view(*precision) : std::string_view());
  if (!parsed.ok()) return ErrorResponse(parsed.status());
  auto map = CurrentMap();
  if (!map || !map->assigned()) {
    return ErrorResponse(Status(Code::kUnavailable, "Cluster map not known yet",
                                {{"retry_after", "1s"}}));
  }
  const int64_t now = NowMicros();
  const std::string& key = req.Header("idempotency-key");
  CommandOptions options;
  options.now_us = now;
  // The same "client:" prefix as the control node: a retry through either path is deduplicated.
  options.idempotency_key = key.empty() ? AutoIdempotencyKey(config_.node_id) : "client:" + key;
  options.key_expires_us = now + (key.empty() ? 600LL : config_.idempotency_ttl_s) * 1000000LL;
  const bool is_batch = parsed->is_batch;
  auto commands = SplitIntoShardCommands(std::move(*parsed), map->num_shards(), options);
  WriteSummary summary =
      DispatchWrites(*map, std::move(commands), writes_, std::chrono::milliseconds(config_.write_timeout_ms),
                     config_.node_id, [this](const pb::ShardCommand& c) { return ApplyLocal(c); });
  if (!summary.all_ok()) {
    // RAFT_ERROR's term: what this node's own replicas of the failed shards know
    // (a NOT_LEADER or unreachable answer carries none).
    for (const auto& o : summary.shards) {
      std::shared_ptr<raft::ShardReplica> replica = o.ok ? nullptr : FindReplica(o.shard);
      if (replica) summary.known_term = std::max(summary.known_term, replica->GetStatus().term);
    }
    spdlog::warn("write not stored on every shard: {}", summary.DescribeFailures());
    return ErrorResponse(summary.FailureStatus(key));
  }
  nlohmann::json body = {{"success", true}, {"storage_size", FormatBytes(shards_.DiskBytes())}};
  if (is_batch) {
    body["message"] = "Metrics inserted successfully";
    body["inserted"] = summary.stored_points;
  } else {
    body["message"] = "Metric inserted successfully";
    body["partition"] = summary.shards[0].shard;
    body["worker_node"] = summary.shards[0].worker_id;
  }
  return JsonResponse(body);
}

HttpResponse WorkerService::HandleInternalWrite(HttpRequest& req) {
  pb::ShardWriteRequest request;
  if (!request.ParseFromString(req.body)) {
    return ErrorResponse(Status(Code::kInvalidRequest, "Malformed protobuf ShardWriteRequest"));
  }
  pb::ShardWriteResponse response;
  response.set_node_id(config_.node_id);
  // Shards are independent: apply them concurrently. Without Raft, the commands
  // for one shard (a control node merged several clients' inserts) are applied
  // together, in one transaction; a replicated shard proposes each as its entry.
  auto map = CurrentMap();
  const bool replicated = map && map->replication_factor() >= 2;
  std::vector<std::vector<int>> groups;  // positions in the request, applied together
  if (replicated) {
    for (int i = 0; i < request.commands_size(); ++i) groups.push_back({i});
  } else {
    std::map<uint32_t, std::vector<int>> by_shard;
    for (int i = 0; i < request.commands_size(); ++i) by_shard[request.commands(i).shard()].push_back(i);
    for (auto& [_, positions] : by_shard) groups.push_back(std::move(positions));
  }
  std::vector<pb::ShardWriteResult> results(request.commands_size());
  auto apply = [&](const std::vector<int>& positions) {
    if (replicated) {
      results[positions.front()] = ApplyReplicated(*map, request.commands(positions.front()));
      return;
    }
    std::vector<const pb::ShardCommand*> commands;
    for (int i : positions) commands.push_back(&request.commands(i));
    auto applied = ApplyStandalone(map ? &*map : nullptr, commands);
    for (size_t k = 0; k < positions.size(); ++k) results[positions[k]] = std::move(applied[k]);
  };
  std::vector<std::future<void>> running;
  for (const auto& positions : groups) {
    if (groups.size() == 1) {
      apply(positions);
    } else {
      running.push_back(tasks_.Submit([&apply, &positions] { apply(positions); }));
    }
  }
  for (auto& f : running) f.get();
  for (auto& r : results) *response.add_results() = std::move(r);
  return ProtoResponse(response);
}

HttpResponse WorkerService::HandleInternalMap(HttpRequest& req) {
  auto json = nlohmann::json::parse(req.body, nullptr, false);
  auto map = ClusterMap::FromJson(json);
  if (!map.ok()) return ErrorResponse(map.status());
  // Several control nodes push the map; one lagging behind the meta group may
  // push an older version, which must not undo a replica move: only newer
  // versions are taken.
  bool changed = false;
  ClusterMap current;
  {
    std::lock_guard<std::mutex> lock(map_mu_);
    if (!map_ || map->version() > map_->version()) {
      map_ = *map;
      changed = true;
    }
    current = *map_;
  }
  if (changed) {
    Status s = map->Save(config_.db_path + "/cluster_map.json");
    if (!s.ok()) spdlog::warn("cannot persist cluster map: {}", s.ToString());
  }
  if (Replicas()) Replicas()->Sync(current);
  if (changed) OpenOwnedShards(current);
  return JsonResponse(HealthJson());
}

void WorkerService::OpenOwnedShards(const ClusterMap& map) {
  // RF 1 shards are plain stores: open the ones this worker owns now, in the
  // background, rather than on their first write (creating a DuckDB file and its
  // tables takes 30-100 ms of CPU, which a first write would wait for, shard
  // after shard). Replicated shards are opened by ReplicaHost::Sync.
  if (map.replication_factor() >= 2) return;
  std::vector<uint32_t> missing;
  for (uint32_t s : map.ShardsOf(config_.node_id)) {
    if (!shards_.Find(s)) missing.push_back(s);
  }
  if (missing.empty()) return;
  (void)tasks_.Submit([this, missing] {
    for (uint32_t s : missing) {
      auto store = shards_.Get(s);
      if (!store.ok()) spdlog::warn("shard {}: cannot open: {}", s, store.status().ToString());
    }
  });
}

}  // namespace rm
