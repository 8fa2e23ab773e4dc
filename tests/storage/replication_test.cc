// The wire form of what a cluster's owner ships to its backups
// (storage/replication.h): what goes in comes out, and anything else is
// refused rather than half applied.
#include <gtest/gtest.h>

#include "storage/replication.h"

namespace dobj::internal {
namespace {

std::vector<ReplicaRecord> sample() {
  ReplicaRecord commit;
  commit.kind = ReplicaRecord::Kind::kCommit;
  commit.ns = "COUNTER";
  commit.id = std::string(64, 'a');
  commit.partition = 7;
  commit.epoch = 123456789012;
  commit.page_size = 4096;
  commit.frames = {WalFrame{3, 0, std::string(4096, 'x')}, WalFrame{1, 5, std::string(4096, 'y')}};
  commit.name = "room-\xc3\xa9";
  commit.history_seq = 41;
  commit.history_time_ms = 1796000000123;
  commit.history_base = true;
  ReplicaRecord unnamed = commit;  // an object its owner knows only by ID
  unnamed.name.reset();
  ReplicaRecord empty_name = commit;  // "" is a name too
  empty_name.name = "";
  ReplicaRecord replace;
  replace.kind = ReplicaRecord::Kind::kReplace;
  replace.ns = "KV";
  replace.id = std::string(64, 'b');
  replace.file = std::string(8192, 'z');
  replace.name = "k";
  replace.history_seq = 9;
  replace.history_time_ms = 1796000000456;
  replace.history = std::string(300, 'h');
  ReplicaRecord remove;
  remove.kind = ReplicaRecord::Kind::kRemove;
  remove.ns = "KV";
  remove.id = std::string(64, 'c');
  ReplicaRecord snapshot;
  snapshot.kind = ReplicaRecord::Kind::kSnapshot;
  snapshot.id = "snap-" + std::string(32, 'd');
  snapshot.file = std::string(4096, 's');
  snapshot.history_time_ms = 1796000000789;
  ReplicaRecord part;  // a part of a large copy, at its offsets
  part.kind = ReplicaRecord::Kind::kAppend;
  part.ns = "KV";
  part.id = std::string(64, 'e');
  part.file = std::string(5000, 'f');
  part.history = std::string(700, 'g');
  part.history_seq = uint64_t{3} << 33;
  part.history_time_ms = int64_t{5} << 32;
  return {commit, unnamed, empty_name, replace, remove, snapshot, part};
}

TEST(ReplicationRecordsTest, RoundTripWithTheirNamesKnownUnknownAndEmptyAndTheirHistory) {
  auto in = sample();
  auto out = decode_replica_records(encode_replica_records(in));
  ASSERT_TRUE(out) << out.status().message();
  ASSERT_EQ(out->size(), in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    const auto& a = in[i];
    const auto& b = (*out)[i];
    EXPECT_EQ(a.kind, b.kind) << i;
    EXPECT_EQ(a.ns, b.ns) << i;
    EXPECT_EQ(a.id, b.id) << i;
    EXPECT_EQ(a.partition, b.partition) << i;
    EXPECT_EQ(a.epoch, b.epoch) << i;
    EXPECT_EQ(a.page_size, b.page_size) << i;
    EXPECT_EQ(a.file, b.file) << i;
    EXPECT_EQ(a.name, b.name) << i;
    EXPECT_EQ(a.history_seq, b.history_seq) << i;
    EXPECT_EQ(a.history_time_ms, b.history_time_ms) << i;
    EXPECT_EQ(a.history_base, b.history_base) << i;
    EXPECT_EQ(a.history, b.history) << i;
    ASSERT_EQ(a.frames.size(), b.frames.size()) << i;
    for (size_t f = 0; f < a.frames.size(); ++f) {
      EXPECT_EQ(a.frames[f].page, b.frames[f].page);
      EXPECT_EQ(a.frames[f].commit_pages, b.frames[f].commit_pages);
      EXPECT_EQ(a.frames[f].data, b.frames[f].data);
    }
  }
}

TEST(ReplicationRecordsTest, EveryCutShortOrExtendedOrOldFormBatchIsRefused) {
  std::string whole = encode_replica_records(sample());
  for (size_t n = 0; n < whole.size(); n += (n < 64 ? 1 : 97)) {
    EXPECT_FALSE(decode_replica_records(std::string_view(whole).substr(0, n))) << "cut at " << n;
  }
  EXPECT_FALSE(decode_replica_records(whole + '\0'));
  // The form before records carried names (magic "dobr") is refused whole,
  // not read as records shifted by a byte.
  std::string old = whole;
  old[3] = 'r';
  EXPECT_FALSE(decode_replica_records(old));
  // A name flag other than 0 or 1 (before the history's number, time, base
  // flag and bytes: 8 + 8 + 1 + 4), or a base flag other than 0 or 1.
  std::string one = encode_replica_records({sample()[4]});
  std::string bad_name = one, bad_base = one;
  bad_name[one.size() - 22] = 2;
  EXPECT_FALSE(decode_replica_records(bad_name));
  bad_base[one.size() - 5] = 2;
  EXPECT_FALSE(decode_replica_records(bad_base));
  // A kind past kAppend (the byte after the magic and the count).
  std::string bad_kind = one;
  bad_kind[8] = 5;
  EXPECT_FALSE(decode_replica_records(bad_kind));
}

// A node of the version before history was replicated ships "dob2"
// batches: they are read, with no history.
TEST(ReplicationRecordsTest, TheFormBeforeHistoryIsReadWithoutIt) {
  ReplicaRecord r = sample()[4];
  std::string v2 = encode_replica_records({r});
  v2.resize(v2.size() - 21);
  v2[3] = '2';
  auto out = decode_replica_records(v2);
  ASSERT_TRUE(out) << out.status().message();
  ASSERT_EQ(out->size(), 1u);
  EXPECT_EQ((*out)[0].kind, ReplicaRecord::Kind::kRemove);
  EXPECT_EQ((*out)[0].id, r.id);
  EXPECT_EQ((*out)[0].history_seq, 0u);
}

}  // namespace
}  // namespace dobj::internal
