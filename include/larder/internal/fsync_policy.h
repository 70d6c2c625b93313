// SPDX-License-Identifier: Apache-2.0
//
// FsyncPolicy: when the write-back journal (journal.h) forces appended records
// to stable storage. Its own header so that the options (cache_options.h) name
// it without pulling in the journal; the public name is larder::FsyncPolicy.
#ifndef LARDER_INTERNAL_FSYNC_POLICY_H_
#define LARDER_INTERNAL_FSYNC_POLICY_H_

namespace larder::internal {

// See the table in journal.h's design notes; kEveryWrite is the default.
// FsyncPolicy: when the journal forces appended records to stable storage.
// See the table in the design notes above; kEveryWrite is the default.
enum class FsyncPolicy {
  kEveryWrite,     // fdatasync before a put is acknowledged (group-committed)
  kEveryInterval,  // fdatasync every JournalOptions::fsync_interval in the background
  kNever,          // leave it to the OS; survives process crashes only
};

}  // namespace larder::internal

#endif  // LARDER_INTERNAL_FSYNC_POLICY_H_
