#include "src/raft/raft_group.h"

#include "src/raft/election_log.h"
#include "src/raft/fsm_binding.h"
#include "src/raft/raft_c.h"
#include "src/raft/raft_network.h"

#include <spdlog/spdlog.h>

#include <cstring>
#include <filesystem>

namespace rm::raft {

struct RaftGroup::Impl {
  RaftGroupOptions options;
  StateMachine* sm = nullptr;
  struct raft raft {};
  struct raft_io io {};
  struct raft_uv_transport transport {};
  FsmBinding fsm;
  ElectionLog election_log;
  bool initialised = false;  // raft_init succeeded: close through raft_close
  bool closing = false;
  std::promise<void> closed;
};

namespace {

// One in-flight proposal; owned by the library between raft_apply and its callback.
struct Proposal {
  struct raft_apply req;
  std::promise<Result<uint64_t>> promise;
};

Status RaftError(const std::string& what, int rv, const char* detail) {
  return Status(Code::kUnavailable, what + ": " + raft_strerror(rv) + (detail && *detail ? std::string(" (") + detail + ")" : ""));
}

std::string RoleName(int state) {
  switch (state) {
    case RAFT_LEADER: return "leader";
    case RAFT_FOLLOWER: return "follower";
    case RAFT_CANDIDATE: return "candidate";
    default: return "unavailable";
  }
}

// How logs name a group: its options' name, else its id.
std::string GroupName(const RaftGroupOptions& o) {
  return o.name.empty() ? "raft group " + std::to_string(o.group_id) : o.name;
}

const struct raft_server* FindServer(const struct raft* r, uint64_t id) {
  for (unsigned i = 0; i < r->configuration.n; ++i) {
    if (r->configuration.servers[i].id == id) return &r->configuration.servers[i];
  }
  return nullptr;
}

// A leader that is handing its leadership over accepts no entries (raft_apply
// and raft_barrier would fail, which Propose/Barrier treat as fatal).
bool Leading(struct raft* r) { return raft_state(r) == RAFT_LEADER && raft_transferee(r) == 0; }

// "Not the leader", naming the leader this replica knows of; during a
// leadership transfer, the replica taking over.
Status NotLeader(struct raft* r) {
  raft_id leader_id = 0;
  const char* leader_address = nullptr;
  raft_leader(r, &leader_id, &leader_address);
  if (raft_state(r) == RAFT_LEADER && raft_transferee(r) != 0) {
    leader_id = raft_transferee(r);
    const struct raft_server* next = FindServer(r, leader_id);
    leader_address = next ? next->address : nullptr;
  }
  return Status(Code::kUnavailable, "not the leader",
                {{"leader_id", leader_id}, {"leader_address", leader_address ? leader_address : ""}});
}

}  // namespace

std::string RaftGroup::EncodeEntry(std::string_view command) {
  const uint64_t n = command.size();
  size_t total = 8 + ((n + 7) / 8) * 8;
  std::string out(total, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  std::memcpy(out.data() + 8, command.data(), n);
  return out;
}

bool RaftGroup::DecodeEntry(const void* data, size_t size, std::string_view* command) {
  if (size < 8 || size % 8 != 0) return false;
  const auto* p = static_cast<const unsigned char*>(data);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(p[i]) << (8 * i);
  if (n > size - 8 || size - 8 - n >= 8) return false;
  *command = std::string_view(reinterpret_cast<const char*>(p + 8), n);
  return true;
}

RaftGroup::RaftGroup(RaftLoop& loop, RaftGroupOptions options, StateMachine& sm) : loop_(loop), impl_(new Impl) {
  impl_->options = std::move(options);
  impl_->sm = &sm;
}

RaftGroup::~RaftGroup() {
  Close();
  Impl* d = impl_;
  loop_.AtStop([d] { delete d; });
}

Status RaftGroup::Start(const std::vector<RaftPeer>& bootstrap) {
  std::error_code ec;
  std::filesystem::create_directories(impl_->options.dir, ec);
  if (ec) return Status(Code::kStorage, "cannot create Raft dir " + impl_->options.dir + ": " + ec.message());
  Status result;
  loop_.RunSync([&] {
    Impl* d = impl_;
    const auto& o = d->options;
    int rv = 0;
    if (o.network) {
      o.network->InitTransport(&d->transport, o.group_id);
    } else {
      d->transport.version = 1;  // the library refuses any other
      rv = raft_uv_tcp_init(&d->transport, loop_.loop());
      if (rv != 0) {
        result = RaftError("raft_uv_tcp_init", rv, nullptr);
        return;
      }
    }
    rv = raft_uv_init(&d->io, loop_.loop(), o.dir.c_str(), &d->transport);
    if (rv != 0) {
      result = RaftError("raft_uv_init", rv, d->io.errmsg);
      if (!o.network) raft_uv_tcp_close(&d->transport);
      return;
    }
    d->fsm.sm = d->sm;
    d->fsm.raft = &d->raft;
    d->fsm.id = o.id;
    d->fsm.Bind();
    rv = raft_init(&d->raft, &d->io, &d->fsm.fsm, o.id, o.address.c_str());
    if (rv != 0) {
      result = RaftError("raft_init", rv, raft_errmsg(&d->raft));
      raft_uv_close(&d->io);
      if (!o.network) raft_uv_tcp_close(&d->transport);
      return;
    }
    d->initialised = true;
    d->raft.data = d;
    d->election_log.Attach(&d->raft, GroupName(o));
    raft_set_election_timeout(&d->raft, o.election_timeout_ms);
    raft_set_heartbeat_timeout(&d->raft, o.heartbeat_timeout_ms);
    raft_set_pre_vote(&d->raft, true);
    raft_set_max_inflight_entries(&d->raft, o.max_inflight_entries);
    raft_set_snapshot_threshold(&d->raft, o.snapshot_threshold > 0 ? o.snapshot_threshold : ~0u);
    raft_set_snapshot_trailing(&d->raft, o.snapshot_trailing);
    raft_set_install_snapshot_timeout(&d->raft, o.install_snapshot_timeout_ms);
    if (!bootstrap.empty()) {
      struct raft_configuration conf;
      raft_configuration_init(&conf);
      for (const auto& p : bootstrap) raft_configuration_add(&conf, p.id, p.address.c_str(), RAFT_VOTER);
      rv = raft_bootstrap(&d->raft, &conf);
      raft_configuration_close(&conf);
      if (rv != 0 && rv != RAFT_CANTBOOTSTRAP) {  // CANTBOOTSTRAP: state exists already
        result = RaftError("raft_bootstrap", rv, raft_errmsg(&d->raft));
        return;
      }
    }
    rv = raft_start(&d->raft);
    if (rv != 0) result = RaftError("raft_start", rv, raft_errmsg(&d->raft));
  });
  return result;
}

std::future<Result<uint64_t>> RaftGroup::Propose(std::string command) {
  auto proposal = new Proposal;
  auto future = proposal->promise.get_future();
  std::string entry = EncodeEntry(command);
  Impl* d = impl_;
  bool posted = loop_.Post([d, proposal, entry = std::move(entry)] {
    if (!d->initialised || d->closing) {
      proposal->promise.set_value(Status(Code::kUnavailable, "Raft replica is closed"));
      delete proposal;
      return;
    }
    if (!Leading(&d->raft)) {
      proposal->promise.set_value(NotLeader(&d->raft));
      delete proposal;
      return;
    }
    struct raft_buffer buf;
    buf.len = entry.size();
    buf.base = raft_malloc(buf.len);
    RM_CHECK(buf.base != nullptr, "out of memory for a Raft entry");
    std::memcpy(buf.base, entry.data(), buf.len);
    proposal->req.data = proposal;
    int rv = raft_apply(&d->raft, &proposal->req, &buf, 1, [](struct raft_apply* req, int status, void*) {
      auto* p = static_cast<Proposal*>(req->data);
      if (status == 0) {
        p->promise.set_value(static_cast<uint64_t>(req->index));
      } else {
        // Leadership lost (or the group closing) with the entry in flight: no
        // quorum confirmed it, which callers report as RAFT_ERROR.
        p->promise.set_value(Status(Code::kRaft, std::string("Raft entry not committed here: ") +
                                                     raft_strerror(status)));
      }
      delete p;
    });
    // The library's error path may already have freed `buf` (notes: double free
    // in legacyHandleUpdateEntries), so a failure here is not recoverable safely.
    RM_CHECK(rv == 0, std::string("raft_apply failed on a leader: ") + raft_strerror(rv));
  });
  if (!posted) {
    proposal->promise.set_value(Status(Code::kUnavailable, "Raft loop is stopping"));
    delete proposal;
  }
  return future;
}

std::future<Status> RaftGroup::Barrier() {
  struct Fence {
    struct raft_barrier req;
    std::promise<Status> promise;
  };
  auto* fence = new Fence;
  auto future = fence->promise.get_future();
  Impl* d = impl_;
  bool posted = loop_.Post([d, fence] {
    if (!d->initialised || d->closing || !Leading(&d->raft)) {
      fence->promise.set_value(Status(Code::kUnavailable, "not the leader"));
      delete fence;
      return;
    }
    fence->req.data = fence;
    int rv = raft_barrier(&d->raft, &fence->req, [](struct raft_barrier* req, int status) {
      auto* f = static_cast<Fence*>(req->data);
      f->promise.set_value(status == 0 ? Status::Ok()
                                       : Status(Code::kUnavailable, std::string("barrier failed: ") + raft_strerror(status)));
      delete f;
    });
    RM_CHECK(rv == 0, std::string("raft_barrier failed on a leader: ") + raft_strerror(rv));
  });
  if (!posted) {
    fence->promise.set_value(Status(Code::kUnavailable, "Raft loop is stopping"));
    delete fence;
  }
  return future;
}

namespace {

// One membership change in flight; owned by the library between the call and its callback.
struct Change {
  struct raft_change req;
  std::promise<Status> promise;
  RaftGroup::Impl* impl = nullptr;
  uint64_t id = 0;
};

Status ChangeFailed(const char* what, int rv) {
  // CANTCHANGE: another change is still in flight; the caller retries.
  return Status(Code::kUnavailable, std::string(what) + ": " + raft_strerror(rv), {{"raft_code", rv}});
}

// A leader asked to remove itself first hands its leadership to the most
// caught-up voter (raft_transfer), then answers "not the leader" naming it, so
// the caller asks the new leader to do the removal. Removing itself directly
// would leave the group leaderless for an election timeout (~1 s of failed
// writes); a transfer takes a round trip or two. False (and nothing done)
// when there is no voter to hand over to.
struct HandOff {
  struct raft_transfer req;
  RaftGroup::Impl* impl;
  Change* change;
};

bool HandOver(RaftGroup::Impl* d, Change* change) {
  auto* h = new HandOff{{}, d, change};
  h->req.data = h;
  int rv = raft_transfer(&d->raft, &h->req, 0, [](struct raft_transfer* req) {
    auto* h = static_cast<HandOff*>(req->data);
    struct raft* r = &h->impl->raft;
    Status s = Leading(r) ? Status(Code::kUnavailable, "leadership transfer did not finish in time; ask again")
                          : NotLeader(r);
    h->change->promise.set_value(std::move(s));
    delete h->change;
    delete h;
  });
  if (rv != 0) {
    delete h;
    return false;
  }
  spdlog::info("{}: handing leadership to replica {} before removing this one", GroupName(d->options),
               raft_transferee(&d->raft));
  return true;
}

}  // namespace

std::future<Status> RaftGroup::AddVoter(uint64_t id, std::string address) {
  auto* change = new Change;
  auto future = change->promise.get_future();
  Impl* d = impl_;
  change->impl = d;
  change->id = id;
  bool posted = loop_.Post([d, change, id, address = std::move(address)] {
    auto finish = [change](Status s) {
      change->promise.set_value(std::move(s));
      delete change;
    };
    if (!d->initialised || d->closing) return finish(Status(Code::kUnavailable, "Raft replica is closed"));
    if (!Leading(&d->raft)) return finish(NotLeader(&d->raft));
    const struct raft_server* server = FindServer(&d->raft, id);
    change->req.data = change;
    auto promote = [](struct raft_change* req, int status) {
      auto* c = static_cast<Change*>(req->data);
      if (status != 0) {
        c->promise.set_value(ChangeFailed("adding the replica failed", status));
        delete c;
        return;
      }
      // A fresh request for the promotion: the library is done with this one.
      auto* next = new Change;
      next->promise = std::move(c->promise);
      next->impl = c->impl;
      next->id = c->id;
      next->req.data = next;
      delete c;
      int rv = raft_assign(&next->impl->raft, &next->req, next->id, RAFT_VOTER, [](struct raft_change* r2, int st) {
        auto* c2 = static_cast<Change*>(r2->data);
        c2->promise.set_value(st == 0 ? Status::Ok() : ChangeFailed("promoting the replica failed", st));
        delete c2;
      });
      if (rv != 0) {
        next->promise.set_value(ChangeFailed("raft_assign", rv));
        delete next;
      }
    };
    if (server && server->role == RAFT_VOTER) return finish(Status::Ok());
    int rv;
    if (server) {
      rv = raft_assign(&d->raft, &change->req, id, RAFT_VOTER, [](struct raft_change* req, int st) {
        auto* c = static_cast<Change*>(req->data);
        c->promise.set_value(st == 0 ? Status::Ok() : ChangeFailed("promoting the replica failed", st));
        delete c;
      });
    } else {
      rv = raft_add(&d->raft, &change->req, id, address.c_str(), promote);
    }
    if (rv != 0) finish(ChangeFailed(server ? "raft_assign" : "raft_add", rv));
  });
  if (!posted) {
    change->promise.set_value(Status(Code::kUnavailable, "Raft loop is stopping"));
    delete change;
  }
  return future;
}

std::future<Status> RaftGroup::RemoveMember(uint64_t id, bool hand_over) {
  auto* change = new Change;
  auto future = change->promise.get_future();
  Impl* d = impl_;
  change->impl = d;
  change->id = id;
  bool posted = loop_.Post([d, change, hand_over] {
    auto finish = [change](Status s) {
      change->promise.set_value(std::move(s));
      delete change;
    };
    if (!d->initialised || d->closing) return finish(Status(Code::kUnavailable, "Raft replica is closed"));
    if (!Leading(&d->raft)) return finish(NotLeader(&d->raft));
    if (!FindServer(&d->raft, change->id)) return finish(Status::Ok());
    if (hand_over && change->id == d->raft.id && HandOver(d, change)) return;
    change->req.data = change;
    int rv = raft_remove(&d->raft, &change->req, change->id, [](struct raft_change* req, int st) {
      auto* c = static_cast<Change*>(req->data);
      c->promise.set_value(st == 0 ? Status::Ok() : ChangeFailed("removing the replica failed", st));
      delete c;
    });
    if (rv != 0) finish(ChangeFailed("raft_remove", rv));
  });
  if (!posted) {
    change->promise.set_value(Status(Code::kUnavailable, "Raft loop is stopping"));
    delete change;
  }
  return future;
}

std::vector<uint64_t> RaftGroup::Voters() {
  std::vector<uint64_t> ids;
  Impl* d = impl_;
  loop_.RunSync([&] {
    if (!d->initialised || d->closing) return;
    for (unsigned i = 0; i < d->raft.configuration.n; ++i) {
      if (d->raft.configuration.servers[i].role == RAFT_VOTER) ids.push_back(d->raft.configuration.servers[i].id);
    }
  });
  return ids;
}

RaftStatus RaftGroup::GetStatus() {
  RaftStatus st;
  Impl* d = impl_;
  loop_.RunSync([&] {
    if (!d->initialised || d->closing) return;
    st.role = RoleName(raft_state(&d->raft));
    st.term = raft_current_term(&d->raft);
    st.commit_index = raft_commit_index(&d->raft);
    st.last_applied = raft_last_applied(&d->raft);
    st.last_log_index = raft_last_index(&d->raft);
    raft_id leader = 0;
    const char* address = nullptr;
    raft_leader(&d->raft, &leader, &address);
    st.leader_id = leader;
    st.leader_address = address ? address : "";
    if (d->raft.now >= d->raft.election_timer_start) {
      st.last_contact_ms = static_cast<int64_t>(d->raft.now - d->raft.election_timer_start);
    }
  });
  if (st.role.empty()) st.role = "unavailable";
  return st;
}

void RaftGroup::Close() {
  Impl* d = impl_;
  bool wait = false;
  loop_.RunSync([&] {
    if (!d->initialised || d->closing) return;
    d->closing = true;
    wait = true;
    raft_close(&d->raft, [](struct raft* r) {
      auto* impl = static_cast<Impl*>(r->data);
      raft_uv_close(&impl->io);  // closes the transport too
      if (!impl->options.network) raft_uv_tcp_close(&impl->transport);
      impl->closed.set_value();
    });
  });
  if (wait) d->closed.get_future().wait();
}

Status AwaitChange(std::future<Status> change, std::chrono::milliseconds timeout, const std::string& what) {
  if (change.wait_for(timeout) != std::future_status::ready) {
    return Status(Code::kTimeout, what + " did not complete in time; it may still complete",
                  {{"timeout_ms", timeout.count()}});
  }
  return change.get();
}

}  // namespace rm::raft
