// Helpers shared by the Raft tests: free loopback ports and bounded waiting.
#pragma once

#include "proto/raftmetrics.pb.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>

namespace rm::raft::testing_util {

// A port that was free on 127.0.0.1 a moment ago.
inline uint16_t FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

// Polls `done` every 10 ms until it holds or `limit` passes.
inline bool WaitFor(const std::function<bool()>& done, std::chrono::milliseconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return done();
}

// A command of `points` points of metric "cpu" for host `host` (tag and
// partition key), values 0..points-1, timestamps from 1000 µs.
inline raftmetrics::v1::ShardCommand PointsCommand(uint32_t shard, const std::string& key, const std::string& host,
                                                   int points) {
  raftmetrics::v1::ShardCommand cmd;
  cmd.set_shard(shard);
  cmd.set_idempotency_key(key);
  cmd.set_issued_us(1000);
  cmd.set_key_expires_us(1LL << 62);
  auto* s = cmd.add_series();
  s->set_metric("cpu");
  s->set_partition_key(host);
  (*s->mutable_tags())["host"] = host;
  for (int i = 0; i < points; ++i) {
    s->add_timestamps_us(1000 + i);
    s->add_values(i);
  }
  return cmd;
}

}  // namespace rm::raft::testing_util
