#include "src/net/http_client.h"

#include "src/common/request_context.h"

#include "src/net/asio.h"

#include <cctype>
#include <deque>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

namespace rm {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

class HttpClient::Impl {
 public:
  Impl() : work_(asio::make_work_guard(io_)) { thread_ = std::thread([this] { io_.run(); }); }

  ~Impl() {
    work_.reset();
    {
      std::lock_guard<std::mutex> lock(mu_);
      idle_.clear();
    }
    io_.stop();
    thread_.join();
  }

  std::future<Result<HttpResponse>> Start(const std::string& address, OutgoingRequest req,
                                          std::chrono::milliseconds timeout) {
    auto promise = std::make_shared<std::promise<Result<HttpResponse>>>();
    auto future = promise->get_future();
    asio::co_spawn(
        io_,
        [this, address, req = std::move(req), timeout, promise]() -> asio::awaitable<void> {
          promise->set_value(co_await Run(address, req, timeout));
        },
        [promise](std::exception_ptr e) {
          if (e) {
            try {
              promise->set_value(Status(Code::kInternal, "http client failure"));
            } catch (const std::future_error&) {
              // the value was already set
            }
          }
        });
    return future;
  }

 private:
  using Stream = std::unique_ptr<beast::tcp_stream>;

  Stream TakeIdle(const std::string& address) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = idle_.find(address);
    if (it == idle_.end() || it->second.empty()) return nullptr;
    Stream s = std::move(it->second.back());
    it->second.pop_back();
    return s;
  }

  void DropIdle(const std::string& address) {
    std::lock_guard<std::mutex> lock(mu_);
    idle_.erase(address);
  }

  void GiveBack(const std::string& address, Stream s) {
    std::lock_guard<std::mutex> lock(mu_);
    auto& list = idle_[address];
    if (list.size() < 64) list.push_back(std::move(s));
  }

  static bool SplitAddress(const std::string& address, std::string& host, std::string& port) {
    size_t colon = address.rfind(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == address.size()) return false;
    host = address.substr(0, colon);
    port = address.substr(colon + 1);
    if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    return true;
  }

  asio::awaitable<Result<HttpResponse>> Run(const std::string& address, const OutgoingRequest& req,
                                            std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (int attempt = 0; attempt < 2; ++attempt) {
      // A retry always dials afresh: the other idle connections to this peer are
      // likely as stale as the one that just failed.
      Stream stream = attempt == 0 ? TakeIdle(address) : nullptr;
      bool reused = stream != nullptr;
      beast::error_code ec;
      if (!stream) {
        std::string host, port;
        if (!SplitAddress(address, host, port)) {
          co_return Status(Code::kInvalidRequest, "bad address '" + address + "'");
        }
        tcp::resolver resolver(io_);
        auto endpoints = co_await resolver.async_resolve(host, port, asio::redirect_error(asio::use_awaitable, ec));
        if (ec) co_return Status(Code::kUnavailable, "cannot resolve " + address + ": " + ec.message());
        stream = std::make_unique<beast::tcp_stream>(io_);
        stream->expires_at(deadline);
        co_await stream->async_connect(endpoints, asio::redirect_error(asio::use_awaitable, ec));
        if (ec) {
          if (ec == beast::error::timeout) co_return Status(Code::kTimeout, "connect to " + address + " timed out");
          co_return Status(Code::kUnavailable, "cannot connect to " + address + ": " + ec.message());
        }
        stream->socket().set_option(tcp::no_delay(true), ec);
      }
      http::request<http::string_body> msg{http::string_to_verb(req.method), req.target, 11};
      msg.set(http::field::host, address);
      msg.keep_alive(true);
      if (!req.content_type.empty()) msg.set(http::field::content_type, req.content_type);
      for (const auto& [k, v] : req.headers) msg.set(k, v);
      msg.body() = req.body;
      msg.prepare_payload();

      stream->expires_at(deadline);
      co_await http::async_write(*stream, msg, asio::redirect_error(asio::use_awaitable, ec));
      beast::flat_buffer buffer;
      http::response_parser<http::string_body> parser;
      parser.body_limit(1ull << 32);
      size_t got = 0;
      if (!ec) {
        got = co_await http::async_read(*stream, buffer, parser,
                                        asio::redirect_error(asio::use_awaitable, ec));
      }
      if (ec) {
        if (ec == beast::error::timeout) {
          co_return Status(Code::kTimeout, "request to " + address + " timed out");
        }
        if (reused && got == 0 && attempt == 0) {  // stale keep-alive connection
          DropIdle(address);
          continue;
        }
        co_return Status(Code::kUnavailable, "request to " + address + " failed: " + ec.message());
      }
      auto& res = parser.get();
      HttpResponse out;
      out.status = static_cast<int>(res.result_int());
      out.content_type = std::string(res[http::field::content_type]);
      for (const auto& field : res) {
        std::string name(field.name_string());
        for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        out.headers.emplace_back(name, std::string(field.value()));
      }
      out.body = std::move(res.body());
      if (res.keep_alive()) {
        stream->expires_never();
        GiveBack(address, std::move(stream));
      }
      co_return out;
    }
    co_return Status(Code::kUnavailable, "request to " + address + " failed");
  }

  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::thread thread_;
  std::mutex mu_;
  std::map<std::string, std::vector<Stream>> idle_;
};

HttpClient::HttpClient() : impl_(std::make_unique<Impl>()) {}
HttpClient::~HttpClient() = default;

namespace {
// Calls made while serving a request carry its id, so one id follows a request
// from the control node to every worker it touches.
void AddRequestId(OutgoingRequest& req) {
  const std::string& id = CurrentRequestId();
  if (id.empty()) return;
  for (const auto& [k, v] : req.headers) {
    if (beast::iequals(k, "x-request-id")) return;
  }
  req.headers.emplace_back("X-Request-Id", id);
}
}  // namespace

Result<HttpResponse> HttpClient::Send(const std::string& address, const OutgoingRequest& req,
                                      std::chrono::milliseconds timeout) {
  OutgoingRequest copy = req;
  AddRequestId(copy);
  return impl_->Start(address, std::move(copy), timeout).get();
}

std::future<Result<HttpResponse>> HttpClient::Start(const std::string& address, OutgoingRequest req,
                                                    std::chrono::milliseconds timeout) {
  AddRequestId(req);
  return impl_->Start(address, std::move(req), timeout);
}

}  // namespace rm
