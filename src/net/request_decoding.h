// Turns a request Beast has parsed into the Beast-free rm::HttpRequest that
// handlers see: method and target as received, the percent-decoded path, the
// decoded query parameters (last one wins), lower-cased header names and the body.
//
// Called by HttpServer for every complete request, and by the HTTP fuzz target
// (tests/fuzz/fuzz_http_request.cc), so both decode exactly the same way. Input
// is untrusted: any bytes Beast accepted must decode without failing.
#pragma once

#include "src/net/http_types.h"

#include <string>
#include <utility>

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

namespace rm {

// Moves the body out of `msg` (left empty); `remote` is the peer, for logs.
HttpRequest DecodeRequest(boost::beast::http::request<boost::beast::http::string_body>& msg,
                          const std::string& remote);

// The reverse for answers: the Beast message HttpServer writes for `resp`
// (body moved out), also serialised by the fuzz target.
boost::beast::http::response<boost::beast::http::string_body> EncodeResponse(HttpResponse& resp, unsigned version,
                                                                              bool keep_alive);

}  // namespace rm
