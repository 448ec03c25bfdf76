// Routes the protobuf library's own log lines (e.g. "String field ... contains
// invalid UTF-8 data", written for every such field a client sends) into the
// node's log, at most 10 lines a minute per source location, with a count of
// what was suppressed. Call once at start, before any parsing (protobuf's
// handler is a process global).
#pragma once

namespace rm {

void InstallProtobufLogHandler();

}  // namespace rm
