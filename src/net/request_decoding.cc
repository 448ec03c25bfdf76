#include "src/net/request_decoding.h"

#include <cctype>

namespace rm {

HttpRequest DecodeRequest(boost::beast::http::request<boost::beast::http::string_body>& msg,
                          const std::string& remote) {
  HttpRequest req;
  req.method = std::string(msg.method_string());
  req.target = std::string(msg.target());
  size_t q = req.target.find('?');
  req.path = UrlDecode(req.target.substr(0, q));
  if (q != std::string::npos) req.query = ParseQueryString(req.target.substr(q + 1));
  for (const auto& field : msg) {
    std::string name(field.name_string());
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    req.headers[name] = std::string(field.value());
  }
  req.body = std::move(msg.body());
  req.remote = remote;
  return req;
}

boost::beast::http::response<boost::beast::http::string_body> EncodeResponse(HttpResponse& resp, unsigned version,
                                                                              bool keep_alive) {
  namespace http = boost::beast::http;
  http::response<http::string_body> msg{static_cast<http::status>(resp.status), version};
  msg.set(http::field::server, "raftmetrics");
  msg.set(http::field::content_type, resp.content_type);
  for (auto& [k, v] : resp.headers) msg.set(k, v);
  msg.keep_alive(keep_alive);
  msg.body() = std::move(resp.body);
  msg.prepare_payload();
  return msg;
}

}  // namespace rm
