#include "src/net/http_server.h"

#include "src/net/asio.h"
#include "src/common/request_context.h"
#include "src/net/error_response.h"
#include "src/net/request_decoding.h"

#include <spdlog/spdlog.h>

#include <atomic>
#include <cctype>
#include <thread>
#include <vector>

namespace rm {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

namespace {
// Bodies at least this large are read without Beast's body parser (see Session),
// in pieces that start at this size and double up to kMaxBodyPiece as bytes
// arrive, so memory follows what was received rather than what was announced.
constexpr uint64_t kDirectBodyBytes = 64 * 1024;
constexpr uint64_t kMaxBodyPiece = 8 << 20;
// What a refused request's connection still reads (and drops) before closing.
constexpr uint64_t kDrainBytes = 8 << 20;
constexpr std::chrono::seconds kDrainTime{2};

// Bytes a connection holds against HttpServerOptions::max_pending_body_bytes,
// given back when it goes (the body is complete, or the connection failed).
class PendingBodyBytes {
 public:
  explicit PendingBodyBytes(std::atomic<uint64_t>& total) : total_(total) {}
  ~PendingBodyBytes() { total_.fetch_sub(held_); }
  PendingBodyBytes(const PendingBodyBytes&) = delete;
  PendingBodyBytes& operator=(const PendingBodyBytes&) = delete;
  // False (nothing taken) when `n` more would pass `cap`.
  bool Take(uint64_t n, uint64_t cap) {
    if (total_.fetch_add(n) + n > cap) {
      total_.fetch_sub(n);
      return false;
    }
    held_ += n;
    return true;
  }

 private:
  std::atomic<uint64_t>& total_;
  uint64_t held_ = 0;
};
}  // namespace
using tcp = asio::ip::tcp;

class HttpServer::Impl {
 public:
  Impl(HttpServerOptions options, HttpHandler handler, HttpScreen screen)
      : options_(std::move(options)),
        handler_(std::move(handler)),
        screen_(std::move(screen)),
        acceptor_(io_),
        pool_(options_.handler_threads) {}

  ~Impl() { Stop(); }

  Status Start() {
    beast::error_code ec;
    auto address = asio::ip::make_address(options_.bind_address, ec);
    if (ec) return Status(Code::kInvalidRequest, "bad bind address: " + options_.bind_address);
    tcp::endpoint endpoint(address, options_.port);
    acceptor_.open(endpoint.protocol(), ec);
    if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(endpoint, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      return Status(Code::kUnavailable, "cannot listen on " + options_.bind_address + ":" +
                                            std::to_string(options_.port) + ": " + ec.message());
    }
    port_ = acceptor_.local_endpoint().port();
    asio::co_spawn(io_, Accept(), asio::detached);
    for (int i = 0; i < std::max(1, options_.io_threads); ++i) {
      threads_.emplace_back([this] { io_.run(); });
    }
    return Status::Ok();
  }

  void Stop() {
    if (stopped_.exchange(true)) return;
    asio::post(io_, [this] {
      beast::error_code ec;
      acceptor_.close(ec);
    });
    io_.stop();
    for (auto& t : threads_) t.join();
    threads_.clear();
    pool_.stop();
    pool_.join();
  }

  uint16_t port() const { return port_; }

 private:
  asio::awaitable<void> Accept() {
    for (;;) {
      beast::error_code ec;
      tcp::socket socket = co_await acceptor_.async_accept(asio::redirect_error(asio::use_awaitable, ec));
      if (ec) {
        if (ec == asio::error::operation_aborted || !acceptor_.is_open()) co_return;
        continue;  // e.g. EMFILE: keep serving the connections we have
      }
      if (connections_.load() >= options_.max_connections) {
        socket.close(ec);  // over the cap: refuse rather than degrade everyone
        continue;
      }
      asio::co_spawn(io_, Session(std::move(socket)), asio::detached);
    }
  }

  asio::awaitable<void> Session(tcp::socket socket) {
    struct Counter {
      std::atomic<int>& n;
      explicit Counter(std::atomic<int>& c) : n(c) { ++n; }
      ~Counter() { --n; }
    } counter(connections_);
    beast::error_code ec;
    std::string remote;
    {
      auto ep = socket.remote_endpoint(ec);
      if (!ec) remote = ep.address().to_string() + ":" + std::to_string(ep.port());
    }
    beast::tcp_stream stream(std::move(socket));
    beast::flat_buffer buffer;
    bool first = true;
    for (;;) {
      http::request_parser<http::string_body> parser;
      parser.body_limit(options_.max_body_bytes);
      parser.header_limit(options_.max_header_bytes);
      stream.expires_after(first ? options_.header_timeout : options_.idle_timeout);
      first = false;
      co_await http::async_read_header(stream, buffer, parser,
                                       asio::redirect_error(asio::use_awaitable, ec));
      HttpRequest req;
      // Counts this request's body against the cap until its answer is written.
      PendingBodyBytes held(pending_body_bytes_);
      if (!ec) {
        req = DecodeRequest(parser.get(), remote);
        // Token and rate limit from the headers: a refused request never has
        // its body read, nor memory reserved for it.
        if (auto refused = SafeScreen(req)) {
          co_await Refuse(stream, buffer, parser, *refused);
          break;
        }
      }
      if (!ec && !parser.is_done()) {
        const auto length = parser.content_length();
        const bool direct = length && *length >= kDirectBodyBytes;
        // The first piece is counted before anything invites the body.
        uint64_t piece = kDirectBodyBytes;
        if (direct && !held.Take(std::min<uint64_t>(piece, *length), options_.max_pending_body_bytes)) {
          HttpResponse busy = OverCap();
          co_await Refuse(stream, buffer, parser, busy);
          break;
        }
        // curl sends "Expect: 100-continue" for bodies over 1 KiB and waits a
        // second for the go-ahead unless it gets one.
        if (beast::iequals(parser.get()[http::field::expect], "100-continue")) {
          http::response<http::empty_body> cont{http::status::continue_, parser.get().version()};
          stream.expires_after(options_.body_timeout);
          co_await http::async_write(stream, cont, asio::redirect_error(asio::use_awaitable, ec));
          if (ec) break;
        }
        stream.expires_after(options_.body_timeout);
        if (direct) {
          // A large body of known length goes straight into its string: Beast's
          // parser reads 64 KiB at a time into the buffer and copies each piece
          // on, re-arming the stream's timer for every read (a control node
          // spent a third of its ingest CPU there). Its limit was checked
          // against Content-Length with the header. The string grows piece by
          // piece, each piece counted against the cap before it is read.
          std::string body;
          bool over_cap = false;
          while (body.size() < *length) {
            const size_t want = static_cast<size_t>(std::min<uint64_t>(piece, *length - body.size()));
            if (!body.empty() && !held.Take(want, options_.max_pending_body_bytes)) {
              over_cap = true;
              break;
            }
            const size_t at = body.size();
            body.resize(at + want);
            const size_t buffered = std::min(buffer.size(), want);
            asio::buffer_copy(asio::buffer(body.data() + at, buffered), buffer.data());
            buffer.consume(buffered);
            if (buffered < want) {
              co_await asio::async_read(stream, asio::buffer(body.data() + at + buffered, want - buffered),
                                        asio::redirect_error(asio::use_awaitable, ec));
              if (ec) break;
            }
            piece = std::min(piece * 2, kMaxBodyPiece);
          }
          if (over_cap) {
            HttpResponse busy = OverCap();
            co_await Refuse(stream, buffer, parser, busy, *length - body.size());
            break;
          }
          req.body = std::move(body);
        } else {
          co_await http::async_read(stream, buffer, parser,
                                    asio::redirect_error(asio::use_awaitable, ec));
          req.body = std::move(parser.get().body());
        }
      }
      if (ec) {
        if (ec == http::error::body_limit) {
          HttpResponse resp = ErrorResponse(Status(
              Code::kPayloadTooLarge, "Request body too large",
              {{"limit_bytes", options_.max_body_bytes}}));
          // Refused before any handler ran: still give the client an id to quote.
          std::string id(parser.get()["X-Request-Id"]);
          resp.headers.emplace_back("X-Request-Id", IsAcceptableRequestId(id) ? id : NewRequestId());
          co_await WriteResponse(stream, resp, 11, false);
        } else if (ec == http::error::header_limit || ec.category() == http::make_error_code(http::error::bad_target).category()) {
          // bad_target shares Beast's category: any parse error gets a 400.
          HttpResponse resp = ErrorResponse(
              Status(Code::kInvalidRequest, "Malformed HTTP request", {{"reason", ec.message()}}));
          resp.headers.emplace_back("X-Request-Id", NewRequestId());
          co_await WriteResponse(stream, resp, 11, false);
        }
        break;  // timeout, EOF or reset: just close
      }
      auto& msg = parser.get();
      bool keep_alive = msg.keep_alive();
      unsigned version = msg.version();
      // Run the (blocking) handler on the handler pool; this coroutine waits.
      HttpResponse resp = co_await asio::co_spawn(
          pool_.get_executor(),
          [this, &req]() -> asio::awaitable<HttpResponse> { co_return SafeHandle(req); },
          asio::use_awaitable);
      if (!co_await WriteResponse(stream, resp, version, keep_alive) || !keep_alive) break;
    }
    stream.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream.close();
  }

  // A request refused before its body was read: answers, stops sending, then
  // reads and drops what the client still sends (at most kDrainBytes, for at
  // most kDrainTime) before the connection closes, so that a client still
  // uploading gets the answer instead of a reset. `unread`: body bytes not
  // read yet (the announced length when unknown here).
  asio::awaitable<void> Refuse(beast::tcp_stream& stream, beast::flat_buffer& buffer,
                               http::request_parser<http::string_body>& parser, HttpResponse& resp,
                               std::optional<uint64_t> unread = std::nullopt) {
    if (!co_await WriteResponse(stream, resp, parser.get().version(), false)) co_return;
    beast::error_code ec;
    stream.socket().shutdown(tcp::socket::shutdown_send, ec);
    uint64_t left = std::min<uint64_t>(unread ? *unread : parser.content_length().value_or(kDrainBytes), kDrainBytes);
    left -= std::min<uint64_t>(left, buffer.size());
    buffer.consume(buffer.size());
    stream.expires_after(kDrainTime);
    std::vector<char> sink(64 * 1024);
    while (left > 0 && !ec) {
      const size_t n = co_await stream.async_read_some(
          asio::buffer(sink.data(), static_cast<size_t>(std::min<uint64_t>(left, sink.size()))),
          asio::redirect_error(asio::use_awaitable, ec));
      left -= std::min<uint64_t>(left, n);
    }
  }

  HttpResponse OverCap() const {
    HttpResponse resp = ErrorResponse(Status(Code::kUnavailable, "Too many request bodies arriving at once",
                                             {{"limit_bytes", options_.max_pending_body_bytes}, {"retry_after", "1s"}}));
    resp.headers.emplace_back("X-Request-Id", NewRequestId());
    spdlog::debug("request body refused: {} bytes of bodies arriving already", pending_body_bytes_.load());
    return resp;
  }

  std::optional<HttpResponse> SafeScreen(HttpRequest& req) {
    if (!screen_) return std::nullopt;
    try {
      return screen_(req);
    } catch (const std::exception& e) {
      spdlog::error("screening {} {} threw: {}", req.method, req.path, e.what());
      return ErrorResponse(Status(Code::kInternal, "Internal error", {{"reason", e.what()}}));
    }
  }

  asio::awaitable<bool> WriteResponse(beast::tcp_stream& stream, HttpResponse& resp,
                                      unsigned version, bool keep_alive) {
    auto msg = EncodeResponse(resp, version, keep_alive);
    beast::error_code ec;
    stream.expires_after(options_.body_timeout);
    co_await http::async_write(stream, msg, asio::redirect_error(asio::use_awaitable, ec));
    co_return !ec;
  }

  HttpResponse SafeHandle(HttpRequest& req) {
    try {
      return handler_(req);
    } catch (const std::exception& e) {
      spdlog::error("handler for {} {} threw: {}", req.method, req.path, e.what());
      return ErrorResponse(Status(Code::kInternal, "Internal error", {{"reason", e.what()}}));
    }
  }

  HttpServerOptions options_;
  HttpHandler handler_;
  HttpScreen screen_;
  std::atomic<uint64_t> pending_body_bytes_{0};
  asio::io_context io_;
  tcp::acceptor acceptor_;
  asio::thread_pool pool_;
  std::vector<std::thread> threads_;
  std::atomic<int> connections_{0};
  std::atomic<bool> stopped_{false};
  uint16_t port_ = 0;
};

HttpServer::HttpServer(HttpServerOptions options, HttpHandler handler, HttpScreen screen)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(handler), std::move(screen))) {}
HttpServer::~HttpServer() = default;
Status HttpServer::Start() { return impl_->Start(); }
void HttpServer::Stop() { impl_->Stop(); }
uint16_t HttpServer::port() const { return impl_->port(); }

}  // namespace rm
