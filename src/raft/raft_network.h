// RaftNetwork: every Raft group of a node talks through one TCP port.
//
// It implements the raft library's transport interface (struct
// raft_uv_transport) once per group on top of a single listener. A connection
// starts with a fixed preamble naming the group and the sender:
//   magic "RMRAFT01" | group id | sender Raft id | address length | address
// (each number 8 bytes little-endian, the address padded to 8 bytes). The
// accepting side reads exactly the preamble, never a byte more (the rest of the
// stream belongs to the library), then hands the stream to that group's accept
// callback. Connections for groups this node does not host are closed; the
// peer's library retries.
//
// Everything runs on the RaftLoop thread. Addresses are numeric IPv4
// "a.b.c.d:port" ("localhost" is read as 127.0.0.1).
#pragma once

#include "src/common/status.h"
#include "src/raft/raft_loop.h"

#include <cstdint>
#include <map>
#include <set>
#include <string>

struct raft_uv_transport;
struct uv_tcp_s;

namespace rm::raft {

class RaftNetwork {
 public:
  RaftNetwork(RaftLoop& loop, std::string listen_address);
  ~RaftNetwork();
  RaftNetwork(const RaftNetwork&) = delete;
  RaftNetwork& operator=(const RaftNetwork&) = delete;

  // Binds and listens. Port 0 picks a free one (see port()).
  Status Start();
  uint16_t port() const { return port_; }
  // Stops listening and drops handshakes in progress. Close the groups first.
  void Close();

  // Fills `t` (caller-owned, valid until its close callback) with this
  // network's transport for `group_id`, ready for raft_uv_init.
  void InitTransport(struct raft_uv_transport* t, uint64_t group_id);

  // For the implementation (raft_network.cc); not for callers.
  struct GroupTransport;
  struct Handshake;
  void Register(uint64_t group_id, GroupTransport* g);
  void Unregister(uint64_t group_id, GroupTransport* g);
  void Deliver(Handshake* h);
  RaftLoop& loop() { return loop_; }

 private:
  RaftLoop& loop_;
  const std::string listen_address_;
  uv_tcp_s* listener_ = nullptr;
  uint16_t port_ = 0;
  bool closed_ = false;
  std::map<uint64_t, GroupTransport*> groups_;
  std::set<Handshake*> handshakes_;
};

// "host:port" -> ip and port; false when not a numeric IPv4 address.
bool SplitRaftAddress(const std::string& address, std::string* ip, int* port);

}  // namespace rm::raft
