#include "src/cli/stats_command.h"

#include "src/cluster/node_config.h"
#include "src/net/http_client.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <future>
#include <vector>

namespace rm {

namespace {

Result<nlohmann::json> FetchStats(HttpClient& client, const std::string& address, const std::string& token,
                                  std::chrono::milliseconds timeout) {
  OutgoingRequest req;
  req.method = "GET";
  req.target = "/stats";
  if (!token.empty()) req.headers.emplace_back("Authorization", "Bearer " + token);
  auto resp = client.Send(address, req, timeout);
  if (!resp.ok()) return resp.status();
  auto body = nlohmann::json::parse(resp->body, nullptr, false);
  if (resp->status != 200 || !body.is_object()) {
    std::string why = body.is_object() && body.contains("message") ? body["message"].get<std::string>() : resp->body;
    return Status(Code::kUnavailable, "HTTP " + std::to_string(resp->status) + ": " + why);
  }
  return body;
}

std::string Num(const nlohmann::json& j, const char* key) {
  if (!j.contains(key)) return "-";
  const auto& v = j[key];
  if (v.is_number_float()) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2f", v.get<double>());
    return buf;
  }
  return v.dump();
}

}  // namespace

int RunStats(const StatsOptions& o) {
  HttpClient client;
  const auto timeout = std::chrono::milliseconds(o.timeout_ms);
  const std::string control = NormalizeAddress(o.control);
  auto head = FetchStats(client, control, o.token, timeout);
  if (!head.ok()) {
    std::fprintf(stderr, "cannot read /stats from control node %s: %s\n", control.c_str(),
                 head.status().message().c_str());
    return 1;
  }
  struct Row {
    std::string id, role, address;
    Result<nlohmann::json> stats;
  };
  std::vector<Row> rows;
  rows.push_back({(*head).value("node_id", "control"), "control", control, *head});
  std::vector<std::pair<size_t, std::future<Result<nlohmann::json>>>> pending;
  for (const auto& w : (*head)["workers"]) {
    rows.push_back({w.value("id", "?"), "worker", w.value("address", ""), Status(Code::kUnavailable, "")});
    std::string address = rows.back().address;
    pending.emplace_back(rows.size() - 1, std::async(std::launch::async, [&client, address, &o, timeout] {
                           return FetchStats(client, address, o.token, timeout);
                         }));
  }
  for (auto& [i, f] : pending) rows[i].stats = f.get();

  if (o.json) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& r : rows) {
      out.push_back(r.stats.ok() ? r.stats.value()
                                 : nlohmann::json{{"node_id", r.id}, {"error", r.stats.status().message()}});
    }
    std::printf("%s\n", out.dump(2).c_str());
    return 0;
  }
  std::printf("%-12s %-8s %-22s %-6s %10s %10s %10s %8s %9s %7s %12s\n", "NODE", "ROLE", "ADDRESS", "STATE",
              "RECEIVED", "ACCEPTED", "COMPLETED", "FAILED", "AVG_MS", "SHARDS", "POINTS");
  for (const auto& r : rows) {
    if (!r.stats.ok()) {
      std::printf("%-12s %-8s %-22s %-6s  (%s)\n", r.id.c_str(), r.role.c_str(), r.address.c_str(), "down",
                  r.stats.status().message().c_str());
      continue;
    }
    const auto& s = r.stats.value();
    std::string shards = r.role == "worker" && s.contains("shards") ? std::to_string(s["shards"].size()) : "-";
    std::printf("%-12s %-8s %-22s %-6s %10s %10s %10s %8s %9s %7s %12s\n", r.id.c_str(), r.role.c_str(),
                r.address.c_str(), "up", Num(s, "requests_received").c_str(), Num(s, "requests_accepted").c_str(),
                Num(s, "requests_completed").c_str(), Num(s, "requests_failed").c_str(),
                Num(s, "avg_completion_ms").c_str(), shards.c_str(),
                r.role == "worker" ? Num(s, "points_stored").c_str() : "-");
  }
  std::printf("\n%-6s %-12s %12s %12s\n", "SHARD", "NODE", "POINTS", "BYTES");
  for (const auto& r : rows) {
    if (r.role != "worker" || !r.stats.ok() || !r.stats.value().contains("shards")) continue;
    for (const auto& sh : r.stats.value()["shards"]) {
      std::printf("%-6s %-12s %12s %12s\n", Num(sh, "shard").c_str(), r.id.c_str(), Num(sh, "points").c_str(),
                  Num(sh, "bytes").c_str());
    }
  }
  return 0;
}

}  // namespace rm
