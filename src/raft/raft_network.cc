#include "src/raft/raft_network.h"

#include "src/raft/raft_c.h"

#include <spdlog/spdlog.h>

#include <cstring>
#include <string>

namespace rm::raft {

namespace {

constexpr char kMagic[8] = {'R', 'M', 'R', 'A', 'F', 'T', '0', '1'};
constexpr size_t kHeader = 32;         // magic, group, sender id, address length
constexpr uint64_t kMaxAddress = 256;

void PutU64(char* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}
uint64_t GetU64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  return v;
}
size_t Padded(size_t n) { return (n + 7) / 8 * 8; }

// Frees a handle allocated with raft_malloc once libuv is done with it.
void FreeHandle(uv_handle_t* h) { raft_free(h); }

}  // namespace

bool SplitRaftAddress(const std::string& address, std::string* ip, int* port) {
  size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  *ip = address.substr(0, colon);
  if (*ip == "localhost") *ip = "127.0.0.1";
  try {
    size_t used = 0;
    *port = std::stoi(address.substr(colon + 1), &used);
    if (used != address.size() - colon - 1 || *port < 0 || *port > 65535) return false;
  } catch (...) {
    return false;
  }
  sockaddr_in sa;
  return uv_ip4_addr(ip->c_str(), *port, &sa) == 0;
}

// The transport of one group.
struct RaftNetwork::GroupTransport {
  RaftNetwork* net = nullptr;
  struct raft_uv_transport* t = nullptr;
  uint64_t group = 0;
  raft_id id = 0;
  std::string address;
  raft_uv_accept_cb accept_cb = nullptr;
  bool closing = false;
  raft_uv_transport_close_cb close_cb = nullptr;
  std::set<struct Connect*> connects;  // outgoing connections in progress
  void MaybeFinishClose();
};

// One outgoing connection: TCP connect, then the preamble, then hand-over.
struct Connect {
  RaftNetwork::GroupTransport* g;
  struct raft_uv_connect* req;
  raft_uv_connect_cb cb;
  uv_tcp_t* tcp;  // raft_malloc'd: the library frees it after hand-over
  uv_connect_t connect_req;
  uv_write_t write_req;
  std::string preamble;
  bool canceled = false;  // the transport closed: the library was told already
};

// One incoming connection reading its preamble.
struct RaftNetwork::Handshake {
  RaftNetwork* net;
  uv_tcp_t* tcp;  // raft_malloc'd
  char data[kHeader + kMaxAddress];
  size_t have = 0;
  size_t need = kHeader;
};

void RaftNetwork::GroupTransport::MaybeFinishClose() {
  if (closing && connects.empty() && close_cb) {
    auto cb = close_cb;
    auto* transport = t;
    delete this;  // nothing refers to it any more
    cb(transport);
  }
}

namespace {

// Finishes a Connect: reports `status` (unless canceled) and frees it. The TCP
// handle is closed unless it was handed over.
void FinishConnect(Connect* c, int status, bool handed_over) {
  auto* g = c->g;
  g->connects.erase(c);
  if (!c->canceled) c->cb(c->req, handed_over ? reinterpret_cast<uv_stream_t*>(c->tcp) : nullptr, status);
  // libuv runs request callbacks before the close callback, so the handle is
  // still valid here even when the transport already closed it.
  auto* handle = reinterpret_cast<uv_handle_t*>(c->tcp);
  if (!handed_over && !uv_is_closing(handle)) uv_close(handle, FreeHandle);
  delete c;
  g->MaybeFinishClose();
}

int TransportInit(struct raft_uv_transport* t, raft_id id, const char* address) {
  auto* g = static_cast<RaftNetwork::GroupTransport*>(t->impl);
  g->id = id;
  g->address = address;
  return 0;
}

int TransportListen(struct raft_uv_transport* t, raft_uv_accept_cb cb) {
  auto* g = static_cast<RaftNetwork::GroupTransport*>(t->impl);
  g->accept_cb = cb;
  g->net->Register(g->group, g);
  return 0;
}

int TransportConnect(struct raft_uv_transport* t, struct raft_uv_connect* req, raft_id, const char* address,
                     raft_uv_connect_cb cb) {
  auto* g = static_cast<RaftNetwork::GroupTransport*>(t->impl);
  std::string ip;
  int port = 0;
  sockaddr_in sa;
  if (!SplitRaftAddress(address, &ip, &port) || uv_ip4_addr(ip.c_str(), port, &sa) != 0) {
    std::snprintf(t->errmsg, sizeof t->errmsg, "bad Raft address %s", address);
    return RAFT_NOCONNECTION;
  }
  auto* c = new Connect;
  c->g = g;
  c->req = req;
  c->cb = cb;
  c->tcp = static_cast<uv_tcp_t*>(raft_malloc(sizeof(uv_tcp_t)));
  RM_CHECK(c->tcp != nullptr, "out of memory");
  uv_tcp_init(g->net->loop().loop(), c->tcp);
  uv_tcp_nodelay(c->tcp, 1);
  c->tcp->data = c;
  c->connect_req.data = c;
  c->write_req.data = c;
  c->preamble.assign(kHeader + Padded(g->address.size()), '\0');
  std::memcpy(c->preamble.data(), kMagic, 8);
  PutU64(c->preamble.data() + 8, g->group);
  PutU64(c->preamble.data() + 16, g->id);
  PutU64(c->preamble.data() + 24, g->address.size());
  std::memcpy(c->preamble.data() + kHeader, g->address.data(), g->address.size());
  g->connects.insert(c);
  int rv = uv_tcp_connect(&c->connect_req, c->tcp, reinterpret_cast<const sockaddr*>(&sa), [](uv_connect_t* creq, int status) {
    auto* c = static_cast<Connect*>(creq->data);
    if (status != 0 || c->canceled) {
      FinishConnect(c, RAFT_NOCONNECTION, false);
      return;
    }
    uv_buf_t buf = uv_buf_init(c->preamble.data(), static_cast<unsigned>(c->preamble.size()));
    int rv = uv_write(&c->write_req, reinterpret_cast<uv_stream_t*>(c->tcp), &buf, 1, [](uv_write_t* w, int status) {
      auto* c = static_cast<Connect*>(w->data);
      const bool ok = status == 0 && !c->canceled;
      FinishConnect(c, ok ? 0 : RAFT_NOCONNECTION, ok);
    });
    if (rv != 0) FinishConnect(c, RAFT_NOCONNECTION, false);
  });
  if (rv != 0) {
    // Not started: undo without calling back (the library sees the error code).
    g->connects.erase(c);
    uv_close(reinterpret_cast<uv_handle_t*>(c->tcp), FreeHandle);
    delete c;
    return RAFT_NOCONNECTION;
  }
  return 0;
}

void TransportClose(struct raft_uv_transport* t, raft_uv_transport_close_cb cb) {
  auto* g = static_cast<RaftNetwork::GroupTransport*>(t->impl);
  g->closing = true;
  g->net->Unregister(g->group, g);
  // Cancel connects in progress: the library hears RAFT_CANCELED now; our
  // handles finish in their libuv callbacks (closing the handle aborts them).
  for (Connect* c : g->connects) {
    if (c->canceled) continue;
    c->canceled = true;
    c->cb(c->req, nullptr, RAFT_CANCELED);
    // Closing aborts the pending connect/write; their callbacks then run with
    // ECANCELED and free the Connect (the close callback frees the handle).
    if (!uv_is_closing(reinterpret_cast<uv_handle_t*>(c->tcp))) {
      uv_close(reinterpret_cast<uv_handle_t*>(c->tcp), FreeHandle);
    }
  }
  g->close_cb = cb;  // set last: MaybeFinishClose may free g
  g->MaybeFinishClose();
}

}  // namespace

void RaftNetwork::InitTransport(struct raft_uv_transport* t, uint64_t group_id) {
  std::memset(t, 0, sizeof *t);
  t->version = 1;
  auto* g = new GroupTransport;
  g->net = this;
  g->t = t;
  g->group = group_id;
  t->impl = g;
  t->init = TransportInit;
  t->listen = TransportListen;
  t->connect = TransportConnect;
  t->close = TransportClose;
}

RaftNetwork::RaftNetwork(RaftLoop& loop, std::string listen_address)
    : loop_(loop), listen_address_(std::move(listen_address)) {}

RaftNetwork::~RaftNetwork() { Close(); }

Status RaftNetwork::Start() {
  std::string ip;
  int port = 0;
  if (!SplitRaftAddress(listen_address_, &ip, &port)) {
    return Status(Code::kInvalidRequest, "bad Raft listen address " + listen_address_ + " (want a.b.c.d:port)");
  }
  Status result;
  loop_.RunSync([&] {
    sockaddr_in sa;
    uv_ip4_addr(ip.c_str(), port, &sa);
    listener_ = static_cast<uv_tcp_t*>(raft_malloc(sizeof(uv_tcp_t)));
    uv_tcp_init(loop_.loop(), listener_);
    listener_->data = this;
    int rv = uv_tcp_bind(listener_, reinterpret_cast<const sockaddr*>(&sa), 0);
    if (rv == 0) {
      rv = uv_listen(reinterpret_cast<uv_stream_t*>(listener_), 128, [](uv_stream_t* server, int status) {
        if (status != 0) return;
        auto* net = static_cast<RaftNetwork*>(server->data);
        auto* h = new Handshake;
        h->net = net;
        h->tcp = static_cast<uv_tcp_t*>(raft_malloc(sizeof(uv_tcp_t)));
        uv_tcp_init(net->loop_.loop(), h->tcp);
        h->tcp->data = h;
        if (uv_accept(server, reinterpret_cast<uv_stream_t*>(h->tcp)) != 0) {
          uv_close(reinterpret_cast<uv_handle_t*>(h->tcp), FreeHandle);
          delete h;
          return;
        }
        uv_tcp_nodelay(h->tcp, 1);
        net->handshakes_.insert(h);
        uv_read_start(
            reinterpret_cast<uv_stream_t*>(h->tcp),
            [](uv_handle_t* handle, size_t, uv_buf_t* buf) {
              // Exactly what the preamble still needs: never read into the library's bytes.
              auto* h = static_cast<Handshake*>(handle->data);
              *buf = uv_buf_init(h->data + h->have, static_cast<unsigned>(h->need - h->have));
            },
            [](uv_stream_t* stream, ssize_t n, const uv_buf_t*) {
              auto* h = static_cast<Handshake*>(stream->data);
              if (n < 0) {
                h->net->handshakes_.erase(h);
                uv_close(reinterpret_cast<uv_handle_t*>(h->tcp), FreeHandle);
                delete h;
                return;
              }
              h->have += static_cast<size_t>(n);
              if (h->have == kHeader && h->need == kHeader) {
                if (std::memcmp(h->data, kMagic, 8) != 0 || GetU64(h->data + 24) > kMaxAddress) {
                  h->net->handshakes_.erase(h);
                  uv_close(reinterpret_cast<uv_handle_t*>(h->tcp), FreeHandle);
                  delete h;
                  return;
                }
                h->need = kHeader + Padded(GetU64(h->data + 24));
              }
              if (h->have == h->need) {
                uv_read_stop(stream);
                h->net->Deliver(h);
              }
        });
      });
    }
    if (rv != 0) {
      result = Status(Code::kUnavailable, "cannot listen for Raft on " + listen_address_ + ": " + uv_strerror(rv));
      uv_close(reinterpret_cast<uv_handle_t*>(listener_), FreeHandle);
      listener_ = nullptr;
      return;
    }
    sockaddr_storage bound;
    int len = sizeof bound;
    uv_tcp_getsockname(listener_, reinterpret_cast<sockaddr*>(&bound), &len);
    port_ = ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  });
  return result;
}

void RaftNetwork::Deliver(Handshake* h) {
  handshakes_.erase(h);
  const uint64_t group = GetU64(h->data + 8);
  const uint64_t sender = GetU64(h->data + 16);
  std::string address(h->data + kHeader, GetU64(h->data + 24));
  auto it = groups_.find(group);
  if (it == groups_.end() || it->second->closing || !it->second->accept_cb) {
    // Not hosted here (yet): the peer's library reconnects later.
    uv_close(reinterpret_cast<uv_handle_t*>(h->tcp), FreeHandle);
  } else {
    GroupTransport* g = it->second;
    g->accept_cb(g->t, sender, address.c_str(), reinterpret_cast<uv_stream_t*>(h->tcp));
  }
  delete h;
}

void RaftNetwork::Register(uint64_t group_id, GroupTransport* g) { groups_[group_id] = g; }

void RaftNetwork::Unregister(uint64_t group_id, GroupTransport* g) {
  auto it = groups_.find(group_id);
  if (it != groups_.end() && it->second == g) groups_.erase(it);
}

void RaftNetwork::Close() {
  if (closed_) return;
  closed_ = true;
  loop_.RunSync([this] {
    for (Handshake* h : handshakes_) {
      uv_close(reinterpret_cast<uv_handle_t*>(h->tcp), FreeHandle);
      delete h;
    }
    handshakes_.clear();
    if (listener_) uv_close(reinterpret_cast<uv_handle_t*>(listener_), FreeHandle);
    listener_ = nullptr;
  });
}

}  // namespace rm::raft
