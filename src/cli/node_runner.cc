#include "src/cli/node_runner.h"

#include "src/common/time_util.h"
#include "src/control/control_service.h"
#include "src/gateway/request_pipeline.h"
#include "src/net/http_server.h"
#include "src/net/router.h"
#include "src/observability/logging.h"
#include "src/observability/metrics_registry.h"
#include "src/worker/worker_service.h"

#include <spdlog/spdlog.h>

#include <csignal>
#include <filesystem>

namespace rm {

void InstallSignalMask() {
  std::signal(SIGPIPE, SIG_IGN);  // a peer that went away must not kill us
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);  // threads inherit: only sigwait sees them
}

int WaitForStopSignal() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  int sig = 0;
  sigwait(&set, &sig);
  return sig;
}

int RunNode(NodeConfig config) {
  SetLogNodeId(config.node_id);
  std::error_code ec;
  std::filesystem::create_directories(config.db_path, ec);
  if (ec) {
    spdlog::critical("cannot create DB_PATH {}: {}", config.db_path, ec.message());
    return 1;
  }
  auto tokens = TokenStore::Load(config.auth_tokens, config.tokens_file);
  if (!tokens.ok()) {
    spdlog::critical("{}", tokens.status().message());
    return 2;
  }
  spdlog::info("authentication: {} token(s) configured", tokens->size());
  const bool is_control = config.role == "control";
  GatewayOptions gateway;
  gateway.public_health = config.public_health;
  gateway.cluster_secret = config.cluster_secret;
  gateway.rate_limit_per_minute = static_cast<uint32_t>(
      config.rate_limit_per_minute >= 0 ? config.rate_limit_per_minute : is_control ? 1000 : 5000);

  MetricsRegistry metrics;
  Router router;
  RequestPipeline pipeline(gateway, std::move(*tokens), router, metrics);
  // The services call other nodes with the same secret the pipeline expects.
  config.cluster_secret = pipeline.cluster_secret();

  std::unique_ptr<ControlService> control;
  std::unique_ptr<WorkerService> worker;
  HttpServerOptions options;
  options.bind_address = config.bind;
  options.port = config.port;
  options.max_body_bytes = config.max_body_bytes;
  options.max_pending_body_bytes = config.max_pending_body_bytes;
  options.handler_threads = config.handler_threads;
  HttpServer server(
      options, [&pipeline](HttpRequest& req) { return pipeline.Handle(req); },
      [&pipeline](HttpRequest& req) { return pipeline.Screen(req); });

  if (is_control) {
    control = std::make_unique<ControlService>(config, metrics);
    control->RegisterRoutes(router);
  } else {
    worker = std::make_unique<WorkerService>(config, metrics);
    worker->RegisterRoutes(router);
  }
  const int64_t started_us = NowMicros();
  metrics.AddGauge("raftmetrics_node_info", "Always 1; the labels describe the node", {"node_id", "role"})
      .Set({config.node_id, config.role}, 1);
  auto& uptime = metrics.AddGauge("raftmetrics_uptime_seconds", "Seconds since the node started");
  metrics.AddCollector([&uptime, started_us] { uptime.Set({}, (NowMicros() - started_us) / 1e6); });
  // GET /metrics: Prometheus. (POST /metrics on the control node stays seed 001's insert.)
  router.Add("GET", "/metrics", [&metrics](HttpRequest&) {
    HttpResponse resp;
    resp.content_type = "text/plain; version=0.0.4; charset=utf-8";
    resp.body = metrics.Render();
    return resp;
  });
  router.Add("GET", "/stats", [&](HttpRequest&) {
    nlohmann::json body = pipeline.StatsJson();
    body["node_id"] = config.node_id;
    body["role"] = config.role;
    body["uptime_seconds"] = (NowMicros() - started_us) / 1000000;
    nlohmann::json part = control ? control->StatsJson() : worker->StatsJson();
    for (auto& [k, v] : part.items()) body[k] = v;
    return HttpResponse::Json(200, body.dump());
  });

  // Storage and state first, then the listener: a request never meets a
  // half-started node.
  Status s = control ? control->Start() : worker->Open();
  if (!s.ok()) {
    spdlog::critical("cannot start {}: {}", config.role, s.ToString());
    return 1;
  }
  s = server.Start();
  if (!s.ok()) {
    spdlog::critical("{}", s.ToString());
    return 1;
  }
  if (worker) worker->StartRegistration(server.port());
  spdlog::info("{} {} listening on {}:{} (data in {})", config.role, config.node_id, config.bind,
               server.port(), config.db_path);
  int sig = WaitForStopSignal();
  spdlog::info("{} {} stopping (signal {})", config.role, config.node_id, sig);
  server.Stop();
  if (control) control->Stop();
  if (worker) worker->Stop();
  return 0;
}

}  // namespace rm
