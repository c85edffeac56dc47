// Readers resuming from a position miss no row that commits out of id
// order (docs/event-store.md, "Reading back").
#include <gtest/gtest.h>
#include <pqxx/pqxx>

#include "core/pg/pool.h"
#include "store/d2c/event_reader.h"
#include "store/d2c/event_store.h"
#include "tests/support/pg.h"
#include "tests/support/wait.h"

namespace ferry::d2c {
namespace {

class EventReaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_.Migrate();
    pool_ = std::make_unique<pg::Pool>(pg::PoolOptions{.url = db_.url(), .max_size = 4}, nullptr);
    EventStore(*pool_).EnsureDays(now_, 1, 1);
    reader_ = std::make_unique<EventReader>(*pool_);
  }

  // Inserts one event row in `tx` (a writer of its own) and returns its id.
  static std::int64_t Insert(pqxx::work& tx, const std::string& device, std::int64_t offset) {
    return tx
        .exec_params1(
            "INSERT INTO d2c_events (consumer_group, topic, kafka_partition, kafka_offset,"
            " enqueued_time, device_id, system_properties, application_properties, body)"
            " VALUES ('g', 't', 0, $1, now(), $2, '{}', '{}', '\\x00') RETURNING id",
            offset, device)[0]
        .as<std::int64_t>();
  }

  std::vector<StoredEvent> ReadAfter(std::optional<Position> after,
                                     std::optional<std::string> device = {},
                                     std::size_t limit = 100) {
    EventQuery q;
    q.group = "g";
    q.device_id = std::move(device);
    q.after = after;
    q.limit = limit;
    return reader_->Read(q);
  }

  testing::TestDatabase db_;
  TimePoint now_ = FromUnixMicros(ToUnixMicros(std::chrono::system_clock::now()));
  std::unique_ptr<pg::Pool> pool_;
  std::unique_ptr<EventReader> reader_;
};

TEST_F(EventReaderTest, ATailResumingAfterTheLastRowSeesARowThatCommittedLaterWithASmallerId) {
  const Position start = reader_->Now();
  pqxx::connection a_conn(db_.url()), b_conn(db_.url());
  pqxx::work a(a_conn), b(b_conn);
  const std::int64_t a_id = Insert(a, "dev", 1);  // the smaller id...
  const std::int64_t b_id = Insert(b, "dev", 2);
  ASSERT_LT(a_id, b_id);
  b.commit();  // ...commits last
  // While A runs, B's row is held back too: returning it would move the
  // reader's position past A's.
  std::vector<StoredEvent> seen = ReadAfter(start);
  EXPECT_TRUE(seen.empty());
  a.commit();
  std::vector<StoredEvent> more;
  EXPECT_TRUE(testing::WaitFor(
      [&] {
        more = ReadAfter(start);
        return more.size() >= 2;
      },
      std::chrono::seconds(30)));
  ASSERT_EQ(more.size(), 2u);
  EXPECT_EQ(more[0].offset, 1);
  EXPECT_EQ(more[1].offset, 2);
  // Resuming after the last one returns nothing twice.
  EXPECT_TRUE(ReadAfter(more.back().position).empty());
}

TEST_F(EventReaderTest, PagedReadsMissNothingCommittedOutOfOrderBetweenPages) {
  pqxx::connection w(db_.url());
  {
    pqxx::work tx(w);
    for (int i = 0; i < 3; ++i) Insert(tx, "dev", i);
    tx.commit();
  }
  // A slow writer takes an id now and commits after the reader paged on.
  pqxx::connection slow_conn(db_.url()), fast_conn(db_.url());
  pqxx::work slow(slow_conn);
  Insert(slow, "dev", 100);
  {
    pqxx::work fast(fast_conn);
    Insert(fast, "dev", 101);
    fast.commit();
  }
  std::vector<StoredEvent> page1;
  EXPECT_TRUE(testing::WaitFor(
      [&] {
        page1 = ReadAfter(std::nullopt, std::string("dev"), 2);
        return page1.size() >= 2;
      },
      std::chrono::seconds(30)));
  ASSERT_EQ(page1.size(), 2u);
  std::vector<StoredEvent> page2 = ReadAfter(page1.back().position, std::string("dev"), 2);
  ASSERT_EQ(page2.size(), 1u);  // 101 waits for 100's writer
  slow.commit();
  // Rows show once every older transaction of the cluster has ended (other
  // tests' included): wait for that, never read past it.
  std::vector<StoredEvent> page3;
  EXPECT_TRUE(testing::WaitFor(
      [&] {
        page3 = ReadAfter(page2.back().position, std::string("dev"), 10);
        return page3.size() >= 2;
      },
      std::chrono::seconds(30)));
  ASSERT_EQ(page3.size(), 2u);
  std::set<std::int64_t> offsets;
  for (const auto* page : {&page1, &page2, &page3}) {
    for (const auto& e : *page) offsets.insert(e.offset);
  }
  EXPECT_EQ(offsets, (std::set<std::int64_t>{0, 1, 2, 100, 101}));
  // Another device's filter and a position that is not one.
  EXPECT_TRUE(ReadAfter(std::nullopt, std::string("other")).empty());
  EXPECT_FALSE(Position::Parse("12").has_value());
  EXPECT_FALSE(Position::Parse("x.1").has_value());
  EXPECT_EQ(Position::Parse("12.5")->id, 5);
}

}  // namespace
}  // namespace ferry::d2c
