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
  ReplicaRecord remove;
  remove.kind = ReplicaRecord::Kind::kRemove;
  remove.ns = "KV";
  remove.id = std::string(64, 'c');
  return {commit, unnamed, empty_name, replace, remove};
}

TEST(ReplicationRecordsTest, RoundTripWithTheirNamesKnownUnknownAndEmpty) {
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
  // A name flag other than 0 or 1.
  std::string one = encode_replica_records({sample()[4]});
  one.back() = 2;
  EXPECT_FALSE(decode_replica_records(one));
}

}  // namespace
}  // namespace dobj::internal
