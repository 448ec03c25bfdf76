// How DispatchWrites hands one worker its shard commands (`/internal/write`).
//
// DirectWriteSender sends every call as its own request. CoalescingWriteSender
// merges the calls made for the same worker while its earlier requests are in
// flight into one request: concurrent client inserts then reach each shard as
// one group of commands, which the worker applies in one DuckDB transaction.
// A transaction costs ~2 ms of worker CPU besides its points, so with 4 clients
// sending 50,000-point batches over 16 shards this is most of the ingest cost
// (docs/benchmarks.md, 2026-12-05). Commands keep their own idempotency keys
// and results: merging changes how they travel, never what is stored or acked.
#pragma once

#include "proto/raftmetrics.pb.h"
#include "src/common/status.h"
#include "src/net/http_client.h"

#include <chrono>
#include <cstddef>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <string>

namespace rm {

class TaskPool;

class WriteSender {
 public:
  virtual ~WriteSender() = default;
  // The worker's answer, one result per command in `request`'s order; an error
  // Status when the worker could not be reached or did not answer 200.
  virtual std::future<Result<raftmetrics::v1::ShardWriteResponse>> Send(
      const std::string& address, raftmetrics::v1::ShardWriteRequest request,
      std::chrono::milliseconds timeout) = 0;
};

class DirectWriteSender : public WriteSender {
 public:
  DirectWriteSender(HttpClient& client, std::string cluster_secret);
  std::future<Result<raftmetrics::v1::ShardWriteResponse>> Send(const std::string& address,
                                                                  raftmetrics::v1::ShardWriteRequest request,
                                                                  std::chrono::milliseconds timeout) override;

 private:
  HttpClient& client_;
  const std::string cluster_secret_;
};

class CoalescingWriteSender : public WriteSender {
 public:
  // At most `max_in_flight` requests per worker; calls made meanwhile wait and
  // go out together (up to `max_points` points per request) when one returns.
  // Only calls with deadlines within 250 ms of each other are merged (a merged
  // request is bounded by the earliest of them).
  CoalescingWriteSender(HttpClient& client, std::string cluster_secret, size_t max_in_flight = 1,
                        size_t max_points = 1'000'000);
  ~CoalescingWriteSender() override;
  std::future<Result<raftmetrics::v1::ShardWriteResponse>> Send(const std::string& address,
                                                                  raftmetrics::v1::ShardWriteRequest request,
                                                                  std::chrono::milliseconds timeout) override;

 private:
  struct Call;
  struct Lane;
  void Drain(const std::string& address, Lane& lane, std::unique_lock<std::mutex>& lock);
  void Run(const std::string& address, Lane& lane, std::vector<std::shared_ptr<Call>> batch);

  DirectWriteSender direct_;
  const size_t max_in_flight_;
  const size_t max_points_;
  std::mutex mu_;  // guards lanes_ and every Lane
  std::map<std::string, std::unique_ptr<Lane>> lanes_;
  std::unique_ptr<TaskPool> pool_;  // waits for merged requests; declared last: drained first
};

}  // namespace rm
