// Making a rename or a new file's directory entry durable (fsync of the parent
// directory): shared by the snapshot install, the command log's rewrite and the
// cluster map's save.
#pragma once

#include "src/common/status.h"

#include <string>
#include <string_view>

namespace rm {

// fsyncs the directory holding `path`; best effort (a failure is not reported:
// the callers' data is synced already, only the entry could be lost).
void SyncDirectoryOf(const std::string& path);

// Replaces the file at `path` with `contents` so that a crash at any moment
// leaves either the old file or the new one, whole and durable: written to
// `path`.tmp, fsynced, renamed over `path`, and the directory fsynced.
// kStorage (naming the step) when a step fails; the old file is then intact.
Status WriteFileAtomically(const std::string& path, std::string_view contents);

}  // namespace rm
