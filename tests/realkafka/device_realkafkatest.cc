// SendEvent against a real three-node Kafka cluster: what Ferry
// acknowledged lands once while the leader of a partition is SIGKILLed (the
// idempotent producer's retries go to the new leader). Label `realkafka`.
#include <signal.h>

#include <atomic>
#include <fstream>
#include <iostream>
#include <map>
#include <regex>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "ferry/v1/device_messaging.grpc.pb.h"
#include "ferry/v1/registry.grpc.pb.h"
#include "tests/support/ferryd.h"
#include "tests/support/kafka.h"
#include "tests/support/pg.h"
#include "tests/support/process.h"
#include "tests/support/real_kafka.h"
#include "tests/support/wait.h"

namespace ferry {
namespace {

using namespace std::chrono_literals;

long Acknowledged(const std::string& record) {
  std::ifstream in(record);
  std::string line;
  long n = 0;
  while (std::getline(in, line)) n += line.find("\"kind\":\"d2c\"") != std::string::npos ? 1 : 0;
  return n;
}

std::unique_ptr<grpc::ClientContext> Owner() {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->AddMetadata("authorization", testing::FerrydProcess::OwnerToken());
  ctx->set_deadline(std::chrono::system_clock::now() + 30s);
  return ctx;
}

TEST(RealKafkaDevice, AcknowledgedEventsLandOnceThroughALeaderKill) {
  testing::RealKafka kafka(3);
  testing::TestDatabase db;
  testing::FerrydProcess ferryd(
      db.url(), {"--migrate", "--roles", "api,d2c", "--kafka-brokers", kafka.bootstrap()},
      {{"FERRY_KAFKA_PROPERTIES",
        "session.timeout.ms=6000;heartbeat.interval.ms=500;"
        "topic.metadata.refresh.interval.ms=1000"}});
  ASSERT_TRUE(testing::WaitFor(
      [&] { return testing::HealthStatus(ferryd.Channel(), "") == "SERVING"; }, 60s))
      << ferryd.process().Output();
  const std::string record = "/tmp/realkafka-devsim-" + std::to_string(getpid()) + ".jsonl";
  std::remove(record.c_str());
  auto env = ferryd.CtlEnv();
  testing::ChildProcess devsim(testing::BinPath("devsim"),
                               {"--devices", "8", "--d2c-rate", "60", "--c2d-rate", "0",
                                "--duration", "0", "--record", record},
                               env);
  // Beside devsim's SendEvent calls, batches of 10 (SendEventBatch) from
  // one more device; an answered batch is acknowledged whole.
  {
    v1::CreateDeviceRequest req;
    req.mutable_device()->set_device_id("batcher");
    v1::Device out;
    ASSERT_TRUE(
        v1::Registry::NewStub(ferryd.Channel())->CreateDevice(Owner().get(), req, &out).ok());
  }
  std::atomic<bool> stop_batches{false};
  std::atomic<long> batches_ok{0}, batches_failed{0};
  std::vector<long> acked_batches;  // the batcher's own until it is joined
  std::thread batcher([&] {
    auto stub = v1::DeviceMessaging::NewStub(ferryd.Channel());
    for (long b = 0; !stop_batches; ++b) {
      v1::SendEventBatchRequest req;
      req.set_device_id("batcher");
      for (int i = 0; i < 10; ++i) {
        v1::D2cMessage* m = req.add_messages();
        m->set_body(std::to_string(i));
        m->set_message_id("b-" + std::to_string(b) + "-" + std::to_string(i));
      }
      v1::SendEventBatchResponse resp;
      if (stub->SendEventBatch(Owner().get(), req, &resp).ok()) {
        ++batches_ok;
        acked_batches.push_back(b);
      } else {
        ++batches_failed;
      }
      std::this_thread::sleep_for(50ms);
    }
  });
  struct Join {
    std::atomic<bool>& stop;
    std::thread& t;
    ~Join() {
      stop = true;
      if (t.joinable()) t.join();
    }
  } join{stop_batches, batcher};
  // Some acknowledged before the fault, then the leader of partition 0
  // killed while sends go on, and more acknowledged after it.
  ASSERT_TRUE(testing::WaitFor([&] { return Acknowledged(record) >= 100; }, 60s))
      << devsim.Output();
  const int killed = kafka.KillLeader("ferry.d2c", 0);
  const long at_kill = Acknowledged(record);
  ASSERT_TRUE(testing::WaitFor([&] { return Acknowledged(record) >= at_kill + 300; }, 120s))
      << devsim.Output() << ferryd.process().Output();
  kafka.Restart(killed);
  stop_batches = true;
  batcher.join();
  devsim.Signal(SIGINT);
  ASSERT_TRUE(devsim.Wait(60s).has_value()) << devsim.Output();
  std::cout << devsim.Output() << std::endl;

  const long acknowledged = Acknowledged(record);
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        return db.Count("SELECT count(*) FROM d2c_events WHERE message_id LIKE 'd-%'") >=
               acknowledged;
      },
      120s))
      << ferryd.process().Output();
  const auto audit =
      testing::Run(testing::BinPath("audit"), {"--postgres-url", db.url(), "--record", record});
  EXPECT_EQ(audit.exit_code, 0) << audit.output;
  EXPECT_NE(audit.output.find("lost 0, duplicated 0"), std::string::npos) << audit.output;
  std::cout << audit.output;
  std::remove(record.c_str());
  // Every batch answered is there whole, once; nothing of any batch twice.
  std::cout << "SendEventBatch: " << batches_ok << " batches acknowledged, " << batches_failed
            << " failed" << std::endl;
  EXPECT_GT(batches_ok.load(), 0);
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        return db.Count("SELECT count(*) FROM d2c_events WHERE message_id LIKE 'b-%'") >=
               10 * batches_ok;
      },
      60s));
  EXPECT_EQ(db.Count("SELECT count(*) - count(DISTINCT message_id) FROM d2c_events WHERE "
                     "message_id LIKE 'b-%'"),
            0);
  for (const long b : acked_batches) {
    EXPECT_EQ(db.Count("SELECT count(*) FROM d2c_events WHERE message_id LIKE 'b-" +
                       std::to_string(b) + "-%'"),
              10)
        << "batch " << b;
  }
  EXPECT_LE(db.Count("SELECT count(*) FROM d2c_events WHERE message_id LIKE 'b-%'"),
            10 * (batches_ok + batches_failed));
}

// Too few in-sync replicas for acks=all (min.insync.replicas=3, a node
// stopped): SendEvent refuses at once with the reason, readiness says why,
// and both recover when the node is back.
TEST(RealKafkaDevice, TooFewInSyncReplicasRefuseSendsWithTheReason) {
  testing::RealKafka kafka(3, {"ferry.d2c:2"});
  kafka.Do("create-topic", {"ferry.strict", "2", "min.insync.replicas=3"});
  testing::TestDatabase db;
  testing::FerrydProcess ferryd(db.url(), {"--migrate", "--roles", "api", "--kafka-brokers",
                                           kafka.bootstrap(), "--d2c-topic", "ferry.strict"});
  ASSERT_TRUE(testing::WaitFor(
      [&] { return testing::HealthStatus(ferryd.Channel(), "") == "SERVING"; }, 60s))
      << ferryd.process().Output();
  const auto env = ferryd.CtlEnv();
  const auto ctl = [&](const std::vector<std::string>& args) {
    return testing::Run(testing::BinPath("ferryctl"), args, 30s, env);
  };
  ASSERT_EQ(ctl({"devices", "create", "dev-1"}).exit_code, 0);
  const auto sent = ctl({"device", "send", "dev-1", "--body", "one"});
  ASSERT_EQ(sent.exit_code, 0) << sent.output;

  kafka.Term(3);
  ASSERT_TRUE(testing::WaitFor(
      [&] { return testing::HealthStatus(ferryd.Channel(), "") == "NOT_SERVING"; }, 60s))
      << ferryd.process().Output();
  EXPECT_TRUE(
      ferryd.process()
          .WaitForLine(
              std::regex("readiness NOT_SERVING reason=.*in-sync replica.*min.insync.replicas 3"),
              10s)
          .has_value())
      << ferryd.process().Output();
  const auto refused = ctl({"device", "send", "dev-1", "--body", "two"});
  EXPECT_NE(refused.exit_code, 0) << refused.output;
  EXPECT_NE(refused.output.find("fewer than its min.insync.replicas 3"), std::string::npos)
      << refused.output;
  EXPECT_NE(refused.output.find("the event was not sent"), std::string::npos) << refused.output;

  kafka.Restart(3);
  ASSERT_TRUE(testing::WaitFor(
      [&] { return testing::HealthStatus(ferryd.Channel(), "") == "SERVING"; }, 120s))
      << ferryd.process().Output();
  const auto again = ctl({"device", "send", "dev-1", "--body", "three"});
  EXPECT_EQ(again.exit_code, 0) << again.output;
}

// Routing to a Kafka endpoint and lifecycle events on a real cluster:
// devices created and deleted (lifecycle events through Kafka), events sent
// through SendEvent, a route sending hot ones and the lifecycle events to an
// endpoint topic; the endpoint gets each exactly once (its producer is
// idempotent), the store the rest.
TEST(RealKafkaDevice, RoutesToAKafkaEndpointAndLifecycleEventsLandOnce) {
  testing::RealKafka kafka(3, {"ferry.d2c:4", "ferry.alerts:2"});
  testing::TestDatabase db;
  testing::FerrydProcess ferryd(db.url(), {"--migrate", "--roles", "api,d2c", "--kafka-brokers",
                                           kafka.bootstrap(), "--d2c-linger-ms", "20"});
  ASSERT_TRUE(testing::WaitFor(
      [&] { return testing::HealthStatus(ferryd.Channel(), "") == "SERVING"; }, 60s))
      << ferryd.process().Output();
  const auto env = ferryd.CtlEnv();
  const auto ctl = [&](const std::vector<std::string>& args) {
    return testing::Run(testing::BinPath("ferryctl"), args, 30s, env);
  };
  ASSERT_EQ(ctl({"endpoints", "create", "alerts", "--kafka-topic", "ferry.alerts"}).exit_code, 0);
  const auto hot =
      ctl({"routes", "create", "hot", "--endpoint", "alerts", "--condition", "$body.temp > 30"});
  ASSERT_EQ(hot.exit_code, 0) << hot.output;
  const auto life = ctl(
      {"routes", "create", "life", "--endpoint", "alerts", "--lifecycle", "--condition", "true"});
  ASSERT_EQ(life.exit_code, 0) << life.output;
  for (int d = 0; d < 3; ++d)
    ASSERT_EQ(ctl({"devices", "create", "dev-" + std::to_string(d)}).exit_code, 0);
  ASSERT_EQ(ctl({"devices", "delete", "dev-2"}).exit_code, 0);
  // 40 events: temp 11..50 from two devices; 20 of them are hot (> 30).
  for (int i = 0; i < 40; ++i) {
    const auto sent =
        ctl({"device", "send", "dev-" + std::to_string(i % 2), "--body",
             "{\"temp\":" + std::to_string(11 + i) + "}", "--content-type", "application/json",
             "--content-encoding", "utf-8", "--message-id", "e-" + std::to_string(i)});
    ASSERT_EQ(sent.exit_code, 0) << sent.output;
  }
  // 40 messages and 4 lifecycle events (three creations, one deletion).
  ASSERT_TRUE(testing::WaitFor(
      [&] { return db.Count("SELECT coalesce(sum(next_offset), 0) FROM d2c_checkpoints") >= 44; },
      60s))
      << ferryd.process().Output();
  const auto endpoint = testing::ReadTopic(kafka.bootstrap(), "ferry.alerts", 2, 24, 60s, 2s);
  std::map<std::string, int> seen;
  int lifecycle = 0;
  for (const auto& r : endpoint) {
    for (const auto& [name, value] : r.headers) {
      if (name == "message-id" && value && value->rfind("e-", 0) == 0) ++seen[*value];
      if (name == "iothub-message-source" && value && *value == "deviceLifecycleEvents")
        ++lifecycle;
    }
  }
  EXPECT_EQ(endpoint.size(), 24u);
  EXPECT_EQ(lifecycle, 4);
  EXPECT_EQ(seen.size(), 20u);
  for (const auto& [id, n] : seen) EXPECT_EQ(n, 1) << id;
  // The store: the 20 cold ones (the fallback), no lifecycle events.
  EXPECT_EQ(db.Count("SELECT count(*) FROM d2c_events"), 20);
  EXPECT_EQ(db.Count("SELECT count(*) FROM d2c_events WHERE (convert_from(body, "
                     "'UTF8')::jsonb->>'temp')::int > 30"),
            0);
  EXPECT_EQ(db.Count("SELECT count(*) FROM d2c_dead_letters"), 0);
}

}  // namespace
}  // namespace ferry
