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

}  // namespace rm
