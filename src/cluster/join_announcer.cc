#include "src/cluster/join_announcer.h"

#include "src/cluster/node_config.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace rm {

JoinAnnouncer::JoinAnnouncer(Options options) : options_(std::move(options)) {}

JoinAnnouncer::~JoinAnnouncer() { Stop(); }

void JoinAnnouncer::Start() {
  if (options_.hosts.empty() || thread_.joinable()) return;
  thread_ = std::thread([this] { Loop(); });
}

void JoinAnnouncer::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool JoinAnnouncer::accepted() const {
  std::lock_guard<std::mutex> lock(mu_);
  return accepted_;
}

void JoinAnnouncer::Loop() {
  OutgoingRequest req;
  req.method = "POST";
  req.target = "/join";
  req.content_type = "application/json";
  req.body = options_.body;
  req.headers = options_.headers;
  const auto& hosts = options_.hosts;
  int delay_ms = 200;
  size_t next = 0;
  for (;;) {
    bool ok = false;
    for (size_t tried = 0; tried < hosts.size() && !ok; ++tried, next = (next + 1) % hosts.size()) {
      const std::string& host = hosts[next];
      // A control node's /join may wait for a new member to catch up: allow for it.
      auto resp = client_.Send(NormalizeAddress(host), req, std::chrono::milliseconds(12000));
      ok = resp.ok() && resp->status == 200;
      if (ok) break;  // keep `next`: ask the same node next time
      spdlog::warn("cannot join through control node {}: {}", host,
                   resp.ok() ? "HTTP " + std::to_string(resp->status) + " " + resp->body.substr(0, 200)
                             : resp.status().message());
    }
    std::unique_lock<std::mutex> lock(mu_);
    if (ok) {
      accepted_ = true;
      if (!options_.keep_announcing) return;
    }
    delay_ms = ok ? 5000 : std::min(delay_ms * 2, 2000);
    if (cv_.wait_for(lock, std::chrono::milliseconds(delay_ms), [this] { return stopping_; })) return;
  }
}

}  // namespace rm
