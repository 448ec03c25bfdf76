#include "src/cli/node_runner.h"

#include "src/control/control_service.h"
#include "src/net/http_server.h"
#include "src/net/router.h"
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

int RunNode(const NodeConfig& config) {
  std::error_code ec;
  std::filesystem::create_directories(config.db_path, ec);
  if (ec) {
    spdlog::critical("cannot create DB_PATH {}: {}", config.db_path, ec.message());
    return 1;
  }
  Router router;
  std::unique_ptr<ControlService> control;
  std::unique_ptr<WorkerService> worker;
  HttpServerOptions options;
  options.bind_address = config.bind;
  options.port = config.port;
  options.max_body_bytes = config.max_body_bytes;
  options.handler_threads = config.handler_threads;
  HttpServer server(options, [&router](HttpRequest& req) { return router.Dispatch(req); });

  if (config.role == "control") {
    control = std::make_unique<ControlService>(config);
    control->RegisterRoutes(router);
  } else {
    worker = std::make_unique<WorkerService>(config);
    worker->RegisterRoutes(router);
  }
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
