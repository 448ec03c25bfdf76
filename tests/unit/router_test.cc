// Tests of src/net/router: exact-path dispatch, 404 and 405 with Allow.
#include "src/net/router.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <string>

namespace rm {
namespace {

HttpRequest Req(const std::string& method, const std::string& path) {
  HttpRequest r;
  r.method = method;
  r.path = path;
  r.target = path;
  return r;
}

std::string HeaderOf(const HttpResponse& r, const std::string& name) {
  for (const auto& [k, v] : r.headers) {
    if (k == name) return v;
  }
  return "";
}

Router SampleRouter() {
  Router router;
  router.Add("GET", "/analytics", [](HttpRequest&) { return HttpResponse::Json(200, "\"analytics\""); });
  router.Add("POST", "/insert", [](HttpRequest&) { return HttpResponse::Json(201, "\"insert\""); });
  router.Add("PUT", "/insert", [](HttpRequest&) { return HttpResponse::Json(200, "\"put\""); });
  router.Add("GET", "/", [](HttpRequest&) { return HttpResponse::Json(200, "\"root\""); });
  return router;
}

TEST(Router, DispatchesByPathAndMethod) {
  Router router = SampleRouter();
  auto req = Req("POST", "/insert");
  EXPECT_EQ(router.Dispatch(req).body, "\"insert\"");
  req = Req("PUT", "/insert");
  EXPECT_EQ(router.Dispatch(req).body, "\"put\"");
  req = Req("GET", "/analytics");
  EXPECT_EQ(router.Dispatch(req).status, 200);
  req = Req("GET", "/");
  EXPECT_EQ(router.Dispatch(req).body, "\"root\"");
}

TEST(Router, HandlerSeesTheRequest) {
  Router router;
  router.Add("POST", "/echo", [](HttpRequest& r) { return HttpResponse::Json(200, r.body); });
  auto req = Req("POST", "/echo");
  req.body = "hello";
  EXPECT_EQ(router.Dispatch(req).body, "hello");
}

TEST(Router, TrailingSlashIsIgnored) {
  Router router = SampleRouter();
  auto req = Req("GET", "/analytics/");
  EXPECT_EQ(router.Dispatch(req).body, "\"analytics\"");
}

TEST(Router, UnknownPathIs404) {
  Router router = SampleRouter();
  auto req = Req("GET", "/nope");
  HttpResponse r = router.Dispatch(req);
  EXPECT_EQ(r.status, 404);
  auto body = nlohmann::json::parse(r.body);
  EXPECT_EQ(body.at("error"), true);
  EXPECT_EQ(body.at("code"), "NOT_FOUND");
  EXPECT_EQ(body.at("details").at("path"), "/nope");
}

TEST(Router, MatchingIsExact) {
  Router router = SampleRouter();
  for (const char* path : {"/insert/x", "/Insert", "/insertx", "", "//insert"}) {
    auto req = Req("POST", path);
    EXPECT_EQ(router.Dispatch(req).status, 404) << path;
  }
}

TEST(Router, WrongMethodIs405WithAllow) {
  Router router = SampleRouter();
  auto req = Req("DELETE", "/insert");
  HttpResponse r = router.Dispatch(req);
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(HeaderOf(r, "Allow"), "POST, PUT");
  auto body = nlohmann::json::parse(r.body);
  EXPECT_EQ(body.at("code"), "METHOD_NOT_ALLOWED");
  EXPECT_EQ(body.at("details").at("method"), "DELETE");
  EXPECT_EQ(body.at("details").at("allowed"), "POST, PUT");
}

TEST(Router, MethodsAreCaseSensitive) {
  Router router = SampleRouter();
  auto req = Req("get", "/analytics");
  EXPECT_EQ(router.Dispatch(req).status, 405);
}

TEST(Router, HeadFallsBackToGet) {
  Router router = SampleRouter();
  auto req = Req("HEAD", "/analytics");
  EXPECT_EQ(router.Dispatch(req).status, 200);
  req = Req("HEAD", "/insert");
  EXPECT_EQ(router.Dispatch(req).status, 405);
}

TEST(Router, LaterAddReplacesTheHandler) {
  Router router;
  router.Add("GET", "/x", [](HttpRequest&) { return HttpResponse::Json(200, "1"); });
  router.Add("GET", "/x", [](HttpRequest&) { return HttpResponse::Json(200, "2"); });
  auto req = Req("GET", "/x");
  EXPECT_EQ(router.Dispatch(req).body, "2");
}

}  // namespace
}  // namespace rm
