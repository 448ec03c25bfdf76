// HttpServer: an HTTP/1.1 keep-alive server. Connections are read and written by
// coroutines on a small I/O thread pool; each complete request is handed to the
// handler on a separate handler pool, because handlers block (DuckDB, calls to
// other nodes). The handler must be thread-safe.
//
// Protections against slow or hostile clients: header and body read deadlines, a
// header size cap, a body size cap (-> 413), an idle keep-alive deadline and a
// connection cap. A malformed request closes only its own connection. A request
// is screened (authenticated, rate-limited) from its headers before its body is
// read; a body's memory grows with the bytes that arrived (never the announced
// Content-Length at once), and the bytes held by bodies still arriving, over all
// connections, are capped (503 above).
#pragma once

#include "src/common/status.h"
#include "src/net/http_types.h"

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace rm {

struct HttpServerOptions {
  std::string bind_address = "0.0.0.0";
  uint16_t port = 0;  // 0: pick a free port (see HttpServer::port())
  int io_threads = 2;
  int handler_threads = 32;
  uint64_t max_body_bytes = 64ull << 20;
  uint32_t max_header_bytes = 16 * 1024;
  std::chrono::milliseconds header_timeout{10000};
  std::chrono::milliseconds body_timeout{60000};
  std::chrono::milliseconds idle_timeout{60000};
  int max_connections = 2048;
  // Bytes held by request bodies still arriving, all connections together; a
  // body that would go over gets 503 and its connection is closed.
  uint64_t max_pending_body_bytes = 1ull << 30;
};

using HttpHandler = std::function<HttpResponse(HttpRequest&)>;
// Called with a request whose headers arrived (body still empty): a response
// refuses it there, and the connection closes after it; nullopt reads the body
// and hands the request (with whatever the screen set in it) to the handler.
using HttpScreen = std::function<std::optional<HttpResponse>(HttpRequest&)>;

class HttpServer {
 public:
  HttpServer(HttpServerOptions options, HttpHandler handler, HttpScreen screen = nullptr);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and starts serving on background threads.
  Status Start();
  // Stops accepting, closes connections, joins threads. Idempotent.
  void Stop();
  uint16_t port() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace rm
