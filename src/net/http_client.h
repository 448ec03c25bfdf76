// HttpClient: a keep-alive HTTP/1.1 client with a connection pool per
// "host:port". Calls block the calling thread until the response arrives or the
// deadline passes; Start() returns a future for fan-out to many nodes at once.
// Thread-safe. Network I/O runs on the client's own I/O thread.
//
// A request sent on a reused keep-alive connection that fails before any byte of
// the response arrives is retried once on a fresh connection (the peer may have
// closed an idle connection). Callers that must not apply twice make their
// requests idempotent (see ShardCommand.idempotency_key).
#pragma once

#include "src/common/status.h"
#include "src/net/http_types.h"

#include <chrono>
#include <future>
#include <memory>
#include <string>

namespace rm {

struct OutgoingRequest {
  std::string method = "GET";
  std::string target = "/";
  std::string content_type;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

class HttpClient {
 public:
  // One I/O thread: Beast's tcp_stream timeouts are not safe when a stream's
  // operations complete on several threads (timeouts then show as kUnavailable).
  HttpClient();
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // `address` is "host:port". Returns kUnavailable when the peer cannot be
  // reached, kTimeout when the deadline passes; any HTTP status is a success here.
  Result<HttpResponse> Send(const std::string& address, const OutgoingRequest& req,
                            std::chrono::milliseconds timeout);
  std::future<Result<HttpResponse>> Start(const std::string& address, OutgoingRequest req,
                                          std::chrono::milliseconds timeout);

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace rm
