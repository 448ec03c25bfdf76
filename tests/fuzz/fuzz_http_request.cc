// libFuzzer target: raw bytes from a client socket, handled as HttpServer does
// (src/net/http_server.cc): a Beast request_parser with the server's header and
// body limits (HttpServerOptions defaults), the bytes arriving in reads of a
// size the input chooses; a complete request is decoded by DecodeRequest
// (src/net/request_decoding.h) and dispatched by a Router whose routes parse
// what the real ones parse, so 404, 405, 400 and 200 paths all run.
//
// Input: a raw HTTP/1.x request ("POST /insert HTTP/1.1\r\n...\r\n\r\nbody").
// The read size is 1 + (last byte % 64) bytes when the input ends in a byte
// >= 0x80 (Beast must cope with any split), else the whole input at once.
#include "src/common/status.h"
#include "src/net/error_response.h"
#include "src/net/http_server.h"
#include "src/net/request_decoding.h"
#include "src/net/router.h"
#include "src/query/aggregate_spec.h"
#include "src/wire/point_parser.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <google/protobuf/stubs/logging.h>

namespace {

namespace beast = boost::beast;
namespace http = beast::http;

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "fuzz_http_request: invariant broken: %s\n", what);
    std::abort();
  }
}

const rm::Router& TheRouter() {
  static const rm::Router* router = [] {
    auto* r = new rm::Router();
    r->Add("POST", "/insert", [](rm::HttpRequest& req) {
      auto parsed = rm::ParseInsertBody(req.body, req.Header("content-type"), rm::InsertDialect::kInsert);
      if (!parsed.ok()) return rm::ErrorResponse(parsed.status());
      return rm::HttpResponse::Json(200, "{\"success\":true}");
    });
    r->Add("GET", "/aggregate", [](rm::HttpRequest& req) {
      auto spec = rm::ParseAggregateParams(req.query, 1705764600LL * 1000000);
      if (!spec.ok()) return rm::ErrorResponse(spec.status());
      return rm::HttpResponse::Json(200, "{}");
    });
    r->Add("GET", "/health", [](rm::HttpRequest&) { return rm::HttpResponse::Json(200, "{}"); });
    return r;
  }();
  return *router;
}

// What the server writes back (rm::EncodeResponse), serialised.
void Reply(rm::HttpResponse& resp, unsigned version, bool keep_alive) {
  http::response<http::string_body> msg = rm::EncodeResponse(resp, version, keep_alive);
  http::response_serializer<http::string_body> sr{msg};
  beast::error_code ec;
  size_t bytes = 0;
  do {
    sr.next(ec, [&](beast::error_code& e, const auto& buffers) {
      e = {};
      size_t n = beast::buffer_bytes(buffers);
      bytes += n;
      sr.consume(n);
    });
  } while (!ec && !sr.is_done());
  Check(!ec && bytes > 0, "the reply does not serialise");
}

}  // namespace

// Protobuf logs every string field that is not UTF-8: quiet, and faster.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const rm::HttpServerOptions limits;  // the server's defaults
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t read_size =
      size > 0 && data[size - 1] >= 0x80 ? 1 + data[size - 1] % 64 : std::max<size_t>(size, 1);

  http::request_parser<http::string_body> parser;
  parser.body_limit(limits.max_body_bytes);
  parser.header_limit(limits.max_header_bytes);
  beast::flat_buffer buffer;
  size_t received = 0;
  beast::error_code ec;
  // Beast's read loop: parse what is buffered; on need_more, read again; at the
  // end of the input (the peer closed), put_eof.
  while (!parser.is_done()) {
    if (buffer.size() > 0) {
      size_t used = parser.put(buffer.data(), ec);
      buffer.consume(used);
      if (ec == http::error::need_more) {
        ec = {};
      } else if (ec) {
        break;
      } else if (used > 0) {
        continue;
      }
    }
    if (received == input.size()) {
      if (parser.got_some()) parser.put_eof(ec);
      if (!ec && !parser.is_done()) ec = http::error::partial_message;
      break;
    }
    size_t n = std::min(read_size, input.size() - received);
    auto dst = buffer.prepare(n);
    std::memcpy(dst.data(), input.data() + received, n);
    buffer.commit(n);
    received += n;
  }
  if (ec) {
    // The server answers 413 or 400 (ErrorResponse) and closes, or just closes.
    if (ec == http::error::body_limit) {
      rm::HttpResponse resp = rm::ErrorResponse(rm::Status(
          rm::Code::kPayloadTooLarge, "Request body too large", {{"limit_bytes", limits.max_body_bytes}}));
      Reply(resp, 11, false);
    } else {
      rm::HttpResponse resp = rm::ErrorResponse(
          rm::Status(rm::Code::kInvalidRequest, "Malformed HTTP request", {{"reason", ec.message()}}));
      Reply(resp, 11, false);
    }
    return 0;
  }
  auto& msg = parser.get();
  const bool keep_alive = msg.keep_alive();
  const unsigned version = msg.version();
  rm::HttpRequest req = rm::DecodeRequest(msg, "127.0.0.1:1");
  rm::HttpResponse resp = TheRouter().Dispatch(req);
  Check(resp.status == 200 || resp.status == 400 || resp.status == 404 || resp.status == 405,
        "unexpected status for a client request");
  Reply(resp, version, keep_alive);
  return 0;
}
