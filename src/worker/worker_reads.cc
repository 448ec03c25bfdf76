// WorkerService, the reads: the seed's /compute over this worker's shards, and
// the control node's scattered /internal/query and /internal/aggregate, which
// answer only for the shards this worker holds (ReadyToRead).
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

}  // namespace rm
