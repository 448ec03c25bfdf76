#include "src/worker/worker_service.h"

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

namespace {

HttpResponse JsonResponse(const nlohmann::json& body, int status = 200) {
  return HttpResponse::Json(status, body.dump());
}

HttpResponse ProtoResponse(const google::protobuf::Message& msg) {
  HttpResponse r;
  r.content_type = "application/x-protobuf";
  r.body = msg.SerializeAsString();
  return r;
}

uint64_t FreeBytes(const std::string& path) {
  struct statvfs st;
  if (statvfs(path.c_str(), &st) != 0) return 0;
  return static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
}

}  // namespace

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

void WorkerService::CollectMetrics() {
  storage_bytes_.Clear();
  shard_points_.Clear();
  for (ShardStore* store : shards_.All()) {
    std::string shard = std::to_string(store->shard());
    storage_bytes_.Set({shard}, static_cast<double>(store->DiskBytes()));
    shard_points_.Set({shard}, static_cast<double>(store->point_count()));
  }
  shard_leader_.Clear();
  if (auto map = CurrentMap()) {
    for (uint32_t s : map->ShardsOf(config_.node_id)) shard_leader_.Set({std::to_string(s), config_.node_id}, 1);
  }
  free_bytes_.Set({}, static_cast<double>(FreeBytes(config_.db_path)));
  if (Replicas()) {
    auto map = CurrentMap();
    raft_role_.Clear();
    for (const auto& g : Replicas()->GroupsJson(map ? &*map : nullptr)) {
      std::string shard = std::to_string(g["shard"].get<uint32_t>());
      raft_term_.Set({shard}, g["term"].get<double>());
      raft_role_.Set({shard, g["role"].get<std::string>()}, 1);
      {
        std::lock_guard<std::mutex> lock(terms_mu_);
        uint64_t& last = last_terms_[g["shard"].get<uint32_t>()];
        const uint64_t term = g["term"].get<uint64_t>();
        if (term > last) raft_elections_.Add({shard}, static_cast<double>(term - last));
        last = std::max(last, term);
        uint64_t& seen = last_installs_[g["shard"].get<uint32_t>()];
        const uint64_t installs = g["snapshots_installed"].get<uint64_t>();
        if (installs > seen) raft_snapshots_installed_.Add({shard}, static_cast<double>(installs - seen));
        seen = std::max(seen, installs);
      }
      raft_is_leader_.Set({shard}, g["role"] == "leader" ? 1 : 0);
      raft_commit_index_.Set({shard}, g["commit_index"].get<double>());
      raft_applied_index_.Set({shard}, g["applied_index"].get<double>());
    }
  }
}

nlohmann::json WorkerService::StatsJson() {
  nlohmann::json shards = nlohmann::json::array();
  uint64_t total = 0;
  for (ShardStore* store : shards_.All()) {
    total += store->point_count();
    // The sum of every value is a checksum replicas of one shard must agree on.
    PointFilter everything;
    everything.min_max = false;
    everything.use_rollup = false;  // the points themselves, in their (replicated) order
    auto agg = store->Aggregate(everything);
    shards.push_back({{"shard", store->shard()},
                      {"points", store->point_count()},
                      {"sum", agg.ok() ? nlohmann::json(agg->sum) : nlohmann::json(nullptr)},
                      {"bytes", store->DiskBytes()},
                      {"applied_index", store->applied_index()}});
  }
  return {{"points_stored", total}, {"shards", shards}};
}

WorkerService::~WorkerService() { Stop(); }

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

HttpResponse WorkerService::HandleCompute(HttpRequest& req) {
  auto started = std::chrono::steady_clock::now();
  nlohmann::json body = nlohmann::json::object();
  if (req.body.find_first_not_of(" \t\r\n") != std::string::npos) {
    body = nlohmann::json::parse(req.body, nullptr, false);
    if (body.is_discarded() || !body.is_object()) {
      return ErrorResponse(Status(Code::kInvalidRequest, "Malformed JSON", {{"reason", "body must be a JSON object"}}));
    }
  }
  nlohmann::json errors = nlohmann::json::array();
  PointFilter filter;
  std::vector<std::string> aggs = kSimpleAggregations;
  std::vector<std::string> group_by;
  if (body.contains("metric") && !body["metric"].is_null()) {
    if (!body["metric"].is_string() || !IsValidName(body["metric"].get<std::string>())) {
      errors.push_back({{"field", "metric"}, {"error", "must match pattern ^[a-zA-Z0-9_.-]+$"}});
    } else {
      filter.metric = body["metric"].get<std::string>();
    }
  }
  if (body.contains("aggregations")) {
    aggs.clear();
    if (!body["aggregations"].is_array()) {
      errors.push_back({{"field", "aggregations"}, {"error", "must be an array of names"}});
    } else {
      for (const auto& a : body["aggregations"]) {
        if (a.is_string()) aggs.push_back(a.get<std::string>());
        else errors.push_back({{"field", "aggregations"}, {"error", "must be an array of names"}});
      }
      Status s = ValidateAggregations(aggs, "aggregations");
      if (!s.ok()) {
        for (const auto& f : s.details()["fields"]) errors.push_back(f);
      }
    }
  }
  if (body.contains("time_window") && !body["time_window"].is_null()) {
    const auto& tw = body["time_window"];
    if (!tw.is_object()) {
      errors.push_back({{"field", "time_window"}, {"error", "must be an object with from/to"}});
    } else {
      std::optional<EpochUnit> precision;  // of epoch times, as on the control node's reads
      if (const std::string* p = req.Param("precision"); p && !p->empty()) {
        precision = ParseEpochUnit(*p);
        if (!precision) errors.push_back({{"field", "precision"}, {"error", std::string(kPrecisionError)}});
      }
      for (const char* f : {"from", "to"}) {
        if (!tw.contains(f) || tw[f].is_null()) continue;
        std::string text;  // a number as its JSON text: the epoch grammar reads its digits
        if (tw[f].is_string()) {
          text = tw[f].get<std::string>();
        } else if (tw[f].is_number_integer()) {
          text = tw[f].dump();
        } else if (tw[f].is_number()) {
          // Fixed notation: dump() writes 1e16 and above with an exponent,
          // which the epoch grammar does not read.
          char buf[400];
          auto written = std::to_chars(buf, buf + sizeof buf, tw[f].get<double>(), std::chars_format::fixed);
          if (written.ec == std::errc()) text.assign(buf, written.ptr);
        }
        auto ts = ParseTimestamp(text, precision);
        if (!ts) {
          errors.push_back(
              {{"field", std::string("time_window.") + f}, {"error", BadTimestampError(text, precision)}});
        } else if (std::string(f) == "from") {
          filter.from_us = ts;
        } else {
          filter.to_us = ts;
        }
      }
      if (filter.from_us && filter.to_us && *filter.from_us > *filter.to_us) {
        errors.push_back({{"field", "time_window"}, {"error", "from must not be after to"}});
      }
    }
  }
  if (body.contains("group_by") && !body["group_by"].is_null()) {
    const auto& g = body["group_by"];
    std::vector<std::string> fields;
    if (g.is_string()) fields.push_back(g.get<std::string>());
    else if (g.is_array()) {
      for (const auto& f : g) {
        if (f.is_string()) fields.push_back(f.get<std::string>());
      }
    }
    for (const auto& f : fields) {
      if (!IsValidName(f)) errors.push_back({{"field", "group_by"}, {"error", "must be tag keys matching ^[a-zA-Z0-9_.-]+$"}});
    }
    if (!g.is_string() && !g.is_array()) errors.push_back({{"field", "group_by"}, {"error", "must be an array of tag keys"}});
    group_by = fields;
  }
  if (!errors.empty()) {
    return ErrorResponse(Status(Code::kValidation, "Invalid request parameters", {{"fields", errors}}));
  }

  // Only the shards this worker holds: seed 001 "compute results show only the
  // data stored in that specific worker". Same shard-side code as /aggregate.
  AggregateSpec spec;
  spec.aggs = aggs;
  spec.group_by = group_by;
  auto& q = spec.query;
  q.set_metric(filter.metric);
  q.set_from_us(filter.from_us.value_or(std::numeric_limits<int64_t>::min()));
  q.set_to_us(filter.to_us.value_or(std::numeric_limits<int64_t>::max()));
  for (const auto& g : group_by) q.add_group_by(g);
  for (const auto& a : aggs) q.set_want_sketch(q.want_sketch() || PercentileOf(a).has_value());
  q.set_max_groups(kMaxGroups);
  AggregateMerger merger(spec);
  for (ShardStore* store : shards_.All()) {
    auto r = store->AggregateQuery(q);
    if (!r.ok()) return ErrorResponse(r.status());
    merger.Add(*r);
  }
  nlohmann::json results = merger.Overall();
  nlohmann::json out = {{"results", results}};
  if (!group_by.empty()) {
    nlohmann::json g = nlohmann::json::object();
    for (const auto& [k, v] : merger.PerGroup()) {
      std::string name;
      for (size_t i = 0; i < k.size(); ++i) name += (i ? "," : "") + k[i];
      g[name] = v;
    }
    out["groups"] = g;
  }
  // Seed 000's Postman example of /compute answers {"average", "count"}. The
  // merger renders spec.aggs at call time, so this re-renders the same data.
  spec.aggs = {"avg", "count"};
  nlohmann::json basic = merger.Overall();
  out["average"] = basic["avg"];
  out["count"] = basic["count"];
  out["computation_time_ms"] = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
  out["worker_node"] = config_.node_id;
  return JsonResponse(out);
}

nlohmann::json WorkerService::RaftStatusJson(const ClusterMap* map) {
  nlohmann::json groups = Replicas() ? Replicas()->GroupsJson(map) : nlohmann::json::array();
  if (groups.empty()) {
    return {{"role", "standalone"}, {"term", 0}, {"leader_id", config_.node_id}, {"last_heartbeat", nullptr},
            {"groups", groups}};
  }
  // Summary: leader of how many groups, highest term, most advanced log, most
  // recent contact; leader_id is the first group's (each group has its own).
  uint64_t term = 0, last_log = 0, leading = 0;
  nlohmann::json last_heartbeat = nullptr;
  for (const auto& g : groups) {
    term = std::max(term, g["term"].get<uint64_t>());
    last_log = std::max(last_log, g["last_log_index"].get<uint64_t>());
    leading += g["role"] == "leader";
    if (g["last_heartbeat"].is_string() &&
        (last_heartbeat.is_null() || g["last_heartbeat"].get<std::string>() > last_heartbeat.get<std::string>())) {
      last_heartbeat = g["last_heartbeat"];
    }
  }
  return {{"role", leading ? "leader" : "follower"}, {"term", term}, {"last_log_index", last_log},
          {"leader_id", groups[0]["leader_id"]}, {"last_heartbeat", last_heartbeat},
          {"leader_of", leading}, {"groups", groups}};
}

nlohmann::json WorkerService::HealthJson() {
  const int64_t uptime_s = (NowMicros() - started_us_) / 1000000;
  const uint64_t used = shards_.DiskBytes();
  const uint64_t free = FreeBytes(config_.db_path);
  nlohmann::json shards = nlohmann::json::array();
  auto map = CurrentMap();
  nlohmann::json shard_points = nlohmann::json::object();
  if (map) {
    for (uint32_t s : map->ShardsOf(config_.node_id)) {
      shards.push_back(s);
      ShardStore* store = shards_.Find(s);
      shard_points[std::to_string(s)] = store ? store->point_count() : 0;
    }
  }
  return {{"status", "healthy"},
          {"node_id", config_.node_id},
          {"role", "worker"},
          {"address", Replicas() ? advertise_ : std::string()},  // set with the host
          {"uptime", FormatUptime(uptime_s)},
          {"uptime_seconds", uptime_s},
          {"storage",
           {{"total_size", FormatBytes(used)},
            {"free_space", FormatBytes(free)},
            {"total_size_bytes", used},
            {"free_space_bytes", free}}},
          {"shards", shards},
          {"shard_points", shard_points},
          {"cluster_map_version", map ? map->version() : 0},
          {"raft_address", Replicas() ? Replicas()->advertise() : ""},
          {"raft_status", RaftStatusJson(map ? &*map : nullptr)}};
}

HttpResponse WorkerService::HandleHealth(HttpRequest&) {
  // A worker serves once its Raft host runs and a control node told it the
  // cluster map (which shards are its own); until then 503, saying which.
  // Control nodes check workers through /internal/map, not this.
  nlohmann::json body = HealthJson();
  std::string reason;
  if (!Replicas()) {
    reason = "starting its Raft host";
  } else if (auto map = CurrentMap(); !map || !map->assigned()) {
    reason = "waiting for the cluster map from a control node";
  }
  if (reason.empty()) return JsonResponse(body);
  body["status"] = "starting";
  body["reason"] = reason;
  return HttpResponse::Json(503, body.dump());
}

HttpResponse WorkerService::HandleStatus(HttpRequest&) {
  auto map = CurrentMap();
  nlohmann::json groups = Replicas() ? Replicas()->GroupsJson(map ? &*map : nullptr) : nlohmann::json::array();
  std::set<uint32_t> replicated;
  for (const auto& g : groups) replicated.insert(g["shard"].get<uint32_t>());
  // Shards kept without Raft (replication factor 1): one copy, always "leader".
  if (map) {
    for (uint32_t s : map->ShardsOf(config_.node_id)) {
      if (replicated.count(s)) continue;
      ShardStore* store = shards_.Find(s);
      const uint64_t applied = store ? store->applied_index() : 0;
      groups.push_back({{"shard", s}, {"group", "shard-" + std::to_string(s)}, {"role", "standalone"},
                        {"term", 0}, {"commit_index", applied}, {"applied_index", applied},
                        {"last_log_index", applied}, {"leader_id", config_.node_id},
                        {"peers", {{{"id", config_.node_id}}}}});
    }
  }
  return JsonResponse({{"node_id", config_.node_id},
                       {"role", "worker"},
                       {"raft_address", Replicas() ? Replicas()->advertise() : ""},
                       {"replication_factor", map ? map->replication_factor() : 0},
                       {"groups", groups}});
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

HttpResponse WorkerService::HandleInternalQuery(HttpRequest& req) {
  pb::ShardQuery query;
  if (!query.ParseFromString(req.body)) {
    return ErrorResponse(Status(Code::kInvalidRequest, "Malformed protobuf ShardQuery"));
  }
  PointFilter filter;
  filter.metric = query.metric();
  filter.partition_key = query.partition_key();
  if (query.has_from()) filter.from_us = query.from_us();
  if (query.has_to()) filter.to_us = query.to_us();
  filter.min_max = !query.skip_min_max();
  pb::ShardQueryResponse response;
  response.set_node_id(config_.node_id);
  std::vector<std::pair<uint32_t, std::future<Result<PartialAggregate>>>> running;
  for (uint32_t shard : query.shards()) {
    if (!ReadyToRead(shard, query.strong_read(), query.leader_read())) continue;  // reported missing
    ShardStore* store = shards_.Find(shard);
    if (!store) {  // never written here: an empty shard
      auto* p = response.add_partials();
      p->set_shard(shard);
      p->mutable_aggregate();
      continue;
    }
    running.emplace_back(shard, tasks_.Submit([store, &filter] { return store->Aggregate(filter); }));
  }
  for (auto& [shard, fut] : running) {
    auto r = fut.get();
    if (!r.ok()) return ErrorResponse(r.status());
    auto* p = response.add_partials();
    p->set_shard(shard);
    auto* a = p->mutable_aggregate();
    a->set_count(r->count);
    a->set_sum(r->sum);
    a->set_min(r->min);
    a->set_max(r->max);
  }
  return ProtoResponse(response);
}

bool WorkerService::ReadyToRead(uint32_t shard, bool strong, bool leader_only) {
  // A shard this worker does not hold now (moved away, or a map that lags
  // behind the caller's) is missing from the answer, never empty: the caller
  // asks another replica, or says the shard is missing.
  auto map = CurrentMap();
  if (!map || !map->assigned()) return false;
  const auto hosted = map->HostedBy(config_.node_id);
  if (!std::binary_search(hosted.begin(), hosted.end(), shard)) return false;
  std::shared_ptr<raft::ShardReplica> replica = FindReplica(shard);
  if (!replica) return map->replication_factor() < 2;  // one copy: what it has is all there is
  if (!strong) return !leader_only || replica->GetStatus().role == "leader";
  Status s = replica->ReadBarrier(std::chrono::milliseconds(config_.query_timeout_ms));
  if (!s.ok()) spdlog::warn("shard {}: strong read refused: {}", shard, s.ToString());
  return s.ok();
}

HttpResponse WorkerService::HandleInternalAggregate(HttpRequest& req) {
  pb::AggregateQuery query;
  if (!query.ParseFromString(req.body)) {
    return ErrorResponse(Status(Code::kInvalidRequest, "Malformed protobuf AggregateQuery"));
  }
  pb::AggregateResponse response;
  response.set_node_id(config_.node_id);
  std::vector<std::pair<uint32_t, std::future<Result<pb::AggregateShardResult>>>> running;
  for (uint32_t shard : query.shards()) {
    if (!ReadyToRead(shard, query.strong_read(), query.leader_read())) continue;  // reported missing
    ShardStore* store = shards_.Find(shard);
    if (!store) {  // never written here: an empty shard
      response.add_shards()->set_shard(shard);
      continue;
    }
    running.emplace_back(shard, tasks_.Submit([store, &query] { return store->AggregateQuery(query); }));
  }
  Status failure;
  for (auto& [shard, fut] : running) {
    auto r = fut.get();
    if (!r.ok()) {
      if (failure.ok()) failure = r.status();
      continue;
    }
    *response.add_shards() = std::move(*r);
  }
  if (!failure.ok()) return ErrorResponse(failure);
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
