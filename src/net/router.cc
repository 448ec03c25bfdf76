#include "src/net/router.h"

#include "src/net/error_response.h"

namespace rm {

void Router::Add(const std::string& method, const std::string& path, HttpHandler handler) {
  routes_[path][method] = std::move(handler);
}

namespace {
std::string Normalized(const std::string& path) {
  if (path.size() > 1 && path.back() == '/') return path.substr(0, path.size() - 1);
  return path;
}
}  // namespace

std::string Router::RouteOf(const HttpRequest& req) const {
  auto it = routes_.find(Normalized(req.path));
  return it == routes_.end() ? "" : it->first;
}

HttpResponse Router::Dispatch(HttpRequest& req) const {
  auto it = routes_.find(Normalized(req.path));
  if (it == routes_.end()) {
    return ErrorResponse(Status(Code::kNotFound, "No such endpoint", {{"path", req.path}}));
  }
  auto m = it->second.find(req.method);
  if (m == it->second.end() && req.method == "HEAD") m = it->second.find("GET");
  if (m == it->second.end()) {
    std::string allow;
    for (const auto& [method, _] : it->second) allow += (allow.empty() ? "" : ", ") + method;
    HttpResponse resp = ErrorResponse(Status(Code::kMethodNotAllowed, "Method not allowed",
                                             {{"method", req.method}, {"allowed", allow}}));
    resp.headers.emplace_back("Allow", allow);
    return resp;
  }
  return m->second(req);
}

}  // namespace rm
