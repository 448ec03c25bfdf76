#include "src/cli/local_cluster.h"

#include "src/cli/node_runner.h"
#include "src/cluster/write_dispatcher.h"
#include "src/gateway/tokens.h"
#include "src/net/http_client.h"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sys/stat.h>
#include <thread>
#include <vector>

namespace rm {
namespace {

pid_t Spawn(const std::string& exe, const std::vector<std::string>& args) {
  pid_t pid = fork();
  if (pid != 0) return pid;
  // Child: stop when `local` dies, even by SIGKILL; restore default signal
  // handling; then become the node.
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  sigset_t set;
  sigemptyset(&set);
  pthread_sigmask(SIG_SETMASK, &set, nullptr);
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(exe.c_str()));
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  execv(exe.c_str(), argv.data());
  std::perror("execv");
  _exit(127);
}

// The token of the local cluster: <data>/token if a previous run left one, else
// a new one written there (readable by the owner only). "" on failure.
std::string LocalToken(const std::string& data_dir) {
  const std::string path = data_dir + "/token";
  std::ifstream in(path);
  std::string token;
  if (in && std::getline(in, token)) {
    while (!token.empty() && (token.back() == '\r' || token.back() == ' ')) token.pop_back();
    if (!token.empty()) return token;
  }
  token = GenerateToken();
  std::ofstream out(path, std::ios::trunc);
  out << token << "\n";
  out.close();
  if (!out) {
    spdlog::critical("cannot write {}", path);
    return "";
  }
  chmod(path.c_str(), 0600);
  return token;
}

// SIGTERM to every child still running, SIGKILL to those not gone in 10 s.
void StopChildren(const std::vector<pid_t>& children) {
  for (pid_t c : children) {
    if (c > 0) kill(c, SIGTERM);
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  for (pid_t c : children) {
    if (c <= 0) continue;
    int status = 0;
    while (waitpid(c, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        kill(c, SIGKILL);
        waitpid(c, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
}

// Polls the control node's /health until it answers 200 (a write would be
// taken), a child exits, or `budget` passes. Returns "" when ready, else why not.
std::string WaitUntilServing(const std::string& address, const std::vector<pid_t>& children,
                             std::chrono::seconds budget) {
  HttpClient client;
  OutgoingRequest req;
  req.target = "/health";
  const char* secret = std::getenv("CLUSTER_SECRET");
  req.headers = InternalHeaders(secret ? secret : "");
  const auto deadline = std::chrono::steady_clock::now() + budget;
  std::string last = "the control node does not answer yet";
  while (std::chrono::steady_clock::now() < deadline) {
    for (pid_t c : children) {
      int status = 0;
      if (waitpid(c, &status, WNOHANG) == c) return "a node (pid " + std::to_string(c) + ") exited during start";
    }
    auto resp = client.Send(address, req, std::chrono::milliseconds(1000));
    if (resp.ok() && resp->status == 200) return "";
    if (resp.ok()) {
      auto body = nlohmann::json::parse(resp->body, nullptr, false);
      if (body.is_object() && body.contains("reason") && body["reason"].is_string()) last = body["reason"];
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return last;
}

}  // namespace

int RunLocal(const LocalOptions& o, const std::string& self_exe) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(o.data_dir, ec);
  if (ec) {
    spdlog::critical("cannot create {}: {}", o.data_dir, ec.message());
    return 1;
  }
  // Children inherit the environment: that is how every node gets the same
  // tokens and secret without putting them on a command line (visible in ps).
  if (!o.auth_tokens.empty()) setenv("AUTH_TOKENS", o.auth_tokens.c_str(), 1);
  if (!o.tokens_file.empty()) setenv("TOKENS_FILE", o.tokens_file.c_str(), 1);
  std::string token;  // shown in the examples below
  bool generated = false;
  const char* env_tokens = std::getenv("AUTH_TOKENS");
  const char* env_file = std::getenv("TOKENS_FILE");
  if ((!env_tokens || !*env_tokens) && (!env_file || !*env_file)) {
    token = LocalToken(o.data_dir);
    if (token.empty()) return 1;
    generated = true;
    setenv("AUTH_TOKENS", token.c_str(), 1);
  } else if (env_tokens && *env_tokens) {
    token = env_tokens;
    token = token.substr(0, token.find(','));
  }
  const char* env_secret = std::getenv("CLUSTER_SECRET");
  if (!env_secret || !*env_secret) setenv("CLUSTER_SECRET", GenerateToken().c_str(), 1);

  std::string worker_hosts;
  for (int i = 0; i < o.workers; ++i) {
    if (i) worker_hosts += ",";
    worker_hosts += "127.0.0.1:" + std::to_string(o.first_worker_port + i);
  }
  // The settings `local` takes itself reach every node as flags.
  std::vector<std::string> common;
  if (o.rate_limit_per_minute >= 0) common.insert(common.end(), {"--rate-limit", std::to_string(o.rate_limit_per_minute)});
  if (o.query_timeout_ms > 0) common.insert(common.end(), {"--query-timeout-ms", std::to_string(o.query_timeout_ms)});
  if (o.write_timeout_ms > 0) common.insert(common.end(), {"--write-timeout-ms", std::to_string(o.write_timeout_ms)});
  auto with_common = [&](std::vector<std::string> args) {
    args.insert(args.end(), common.begin(), common.end());
    return args;
  };
  std::vector<pid_t> children;
  for (int i = 0; i < o.workers; ++i) {
    int id = i + 1;
    uint16_t port = static_cast<uint16_t>(o.first_worker_port + i);
    children.push_back(Spawn(self_exe, with_common({"worker", "--id", std::to_string(id), "--port",
                                                    std::to_string(port), "--bind", o.bind, "--db-path",
                                                    o.data_dir + "/worker-" + std::to_string(id), "--advertise",
                                                    "127.0.0.1:" + std::to_string(port)})));
  }
  children.push_back(Spawn(self_exe, with_common({"control", "--id", "1", "--port", std::to_string(o.control_port),
                                                  "--bind", o.bind, "--db-path", o.data_dir + "/control",
                                                  "--worker-hosts", worker_hosts, "--shards",
                                                  std::to_string(o.shards), "--replication-factor",
                                                  std::to_string(o.replication_factor)})));
  std::string url = "http://127.0.0.1:" + std::to_string(o.control_port);
  // The banner's examples must work when it appears: it waits until a write
  // would be taken.
  const std::string host = o.bind == "0.0.0.0" || o.bind == "::" || o.bind.empty() ? "127.0.0.1"
                           : o.bind.find(':') != std::string::npos      ? "[" + o.bind + "]"
                                                                        : o.bind;
  const std::string not_ready =
      WaitUntilServing(host + ":" + std::to_string(o.control_port), children, std::chrono::seconds(120));
  if (!not_ready.empty()) {
    spdlog::error("the local cluster did not come up (it must take writes within 120 s): {}", not_ready);
    StopChildren(children);
    return 1;
  }
  std::printf(
      "\nRaftMetrics local cluster\n"
      "  control  %s\n", url.c_str());
  for (int i = 0; i < o.workers; ++i) {
    std::printf("  worker-%d http://127.0.0.1:%d\n", i + 1, o.first_worker_port + i);
  }
  const std::string auth = token.empty() ? "<a token from the tokens file>" : token;
  const std::string token_hint = generated ? "export TOKEN=$(cat " + o.data_dir + "/token)"
                                           : "export TOKEN=<one of your tokens>";
  std::printf(
      "  data     %s\n"
      "  token    %s\n\n"
      "Every request needs a token: %s\n"
      "Insert a point:\n"
      "  curl -s -XPOST %s/insert -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' \\\n"
      "       -d '{\"partition_key\":\"user123\",\"value\":42.5}'\n"
      "  curl -s -XPOST %s/metrics -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' \\\n"
      "       -d '{\"key\":\"cpu_usage\",\"value\":75.5,\"tags\":{\"host\":\"server-1\",\"datacenter\":\"us-west\"}}'\n"
      "Query:\n"
      "  curl -s -H \"Authorization: Bearer $TOKEN\" '%s/analytics'\n"
      "  curl -s -H \"Authorization: Bearer $TOKEN\" '%s/aggregate?metric=cpu_usage&group_by=datacenter'\n"
      "  curl -s -H \"Authorization: Bearer $TOKEN\" '%s/health'\n"
      "Cluster stats:\n"
      "  %s stats --control 127.0.0.1:%d\n"
      "Press Ctrl-C to stop.\n\n",
      o.data_dir.c_str(), auth.c_str(), token_hint.c_str(), url.c_str(), url.c_str(), url.c_str(), url.c_str(), url.c_str(), self_exe.c_str(),
      o.control_port);
  std::fflush(stdout);

  // Wait for Ctrl-C / SIGTERM, or for a child to die on its own.
  int sig = 0;
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGCHLD);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  for (;;) {
    sigwait(&set, &sig);
    if (sig != SIGCHLD) break;
    int status = 0;
    pid_t dead = waitpid(-1, &status, WNOHANG);
    if (dead > 0) {
      spdlog::error("a node (pid {}) exited unexpectedly (status {}); stopping the cluster", dead, status);
      for (auto& c : children) {
        if (c == dead) c = 0;
      }
      break;
    }
  }
  spdlog::info("stopping the local cluster");
  StopChildren(children);
  return 0;
}

}  // namespace rm
