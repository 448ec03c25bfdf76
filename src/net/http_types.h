// Plain HTTP request/response values shared by the server, the client and every
// handler. Deliberately free of Beast so that handlers compile quickly and can be
// unit-tested without sockets.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace rm {

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string target;  // path plus query, as received
  std::string path;    // decoded path, without the query
  std::map<std::string, std::string> query;    // decoded query parameters (last one wins)
  std::map<std::string, std::string> headers;  // header names lower-cased
  std::string body;
  std::string remote;  // peer address, for logs
  // Set when the request was admitted from its headers alone, before its body
  // was read (the HttpServer's screen, see http_server.h): who sent it, and headers its answer
  // carries (rate-limit state). The handler then does not admit it again.
  struct Admission {
    std::string principal;
    std::vector<std::pair<std::string, std::string>> headers;
  };
  std::optional<Admission> admission;

  // Header value or "" (name must be lower-case).
  const std::string& Header(const std::string& name) const;
  // Query parameter or nullptr.
  const std::string* Param(const std::string& name) const;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;

  static HttpResponse Json(int status, std::string body) {
    HttpResponse r;
    r.status = status;
    r.body = std::move(body);
    return r;
  }
};

// Percent-decoding ('+' as space) of a URL component; nullopt-free: invalid
// escapes are kept literally.
std::string UrlDecode(const std::string& text);
// Splits "a=1&b=2" into decoded pairs.
std::map<std::string, std::string> ParseQueryString(const std::string& query);
// Percent-encodes a query component.
std::string UrlEncode(const std::string& text);

}  // namespace rm
