#include "src/raft/fsm_binding.h"

#include <spdlog/spdlog.h>

#include <cstring>
#include <string>

namespace rm::raft {
namespace {

FsmBinding* Binding(struct raft_fsm* fsm) { return static_cast<FsmBinding*>(fsm->data); }

int FsmApply(struct raft_fsm* fsm, const struct raft_buffer* buf, void** result) {
  FsmBinding* b = Binding(fsm);
  *result = nullptr;
  const uint64_t index = raft_last_applied(b->raft) + 1;
  std::string_view command;
  RM_CHECK(RaftGroup::DecodeEntry(buf->base, buf->len, &command), "malformed Raft entry " + std::to_string(index));
  Status s = b->sm->Apply(index, command);
  RM_CHECK(s.ok(), "replica " + std::to_string(b->id) + " cannot apply entry " + std::to_string(index) + ": " +
                       s.ToString());
  return 0;
}

int FsmSnapshot(struct raft_fsm* fsm, struct raft_buffer* bufs[], unsigned* n_bufs) {
  FsmBinding* b = Binding(fsm);
  Result<std::string> payload = b->sm->Snapshot(raft_last_applied(b->raft));
  if (!payload.ok()) return RAFT_BUSY;  // not caught up: the library retries later
  const std::string entry = RaftGroup::EncodeEntry(*payload);
  *bufs = static_cast<struct raft_buffer*>(raft_malloc(sizeof(struct raft_buffer)));
  if (*bufs == nullptr) return RAFT_NOMEM;
  (*bufs)[0].len = entry.size();
  (*bufs)[0].base = raft_malloc(entry.size());
  if ((*bufs)[0].base == nullptr) {
    raft_free(*bufs);
    return RAFT_NOMEM;
  }
  std::memcpy((*bufs)[0].base, entry.data(), entry.size());
  *n_bufs = 1;
  return 0;
}

// Owns buf->base (the library hands it over).
int FsmRestore(struct raft_fsm* fsm, struct raft_buffer* buf) {
  FsmBinding* b = Binding(fsm);
  std::string_view payload;
  const bool framed = RaftGroup::DecodeEntry(buf->base, buf->len, &payload);
  Status s = framed ? b->sm->Restore(payload) : Status(Code::kInternal, "malformed Raft snapshot");
  raft_free(buf->base);
  if (!s.ok()) {
    spdlog::error("replica {}: cannot restore a snapshot: {}", b->id, s.ToString());
    return RAFT_MALFORMED;
  }
  return 0;
}

}  // namespace

void FsmBinding::Bind() {
  fsm = {};
  fsm.version = 1;
  fsm.data = this;
  fsm.apply = &FsmApply;
  fsm.snapshot = &FsmSnapshot;
  fsm.restore = &FsmRestore;
}

}  // namespace rm::raft
