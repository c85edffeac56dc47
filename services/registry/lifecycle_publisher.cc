#include "services/registry/lifecycle_publisher.h"

#include <pqxx/pqxx>

#include "consumers/d2c/event_store.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/pg/listener.h"
#include "core/pg/transaction.h"
#include "core/time_text.h"

namespace ferry::registry {
namespace {

// pg_try_advisory_xact_lock key: "ferry.lc".
constexpr long long kPublisherLockKey = 0x66657272792e6c63LL;

}  // namespace

LifecyclePublisher::LifecyclePublisher(pg::Pool& pool, d2c::EndpointSink& sink, std::string topic,
                                       std::string hub_name, prometheus::Registry& registry)
    : pool_(pool),
      sink_(sink),
      topic_(std::move(topic)),
      hub_name_(std::move(hub_name)),
      published_(prometheus::BuildCounter()
                     .Name("ferry_lifecycle_events_published_total")
                     .Help("Device lifecycle notifications published to the D2C topic.")
                     .Register(registry)
                     .Add({})) {}

LifecyclePublisher::~LifecyclePublisher() { Stop(); }

void LifecyclePublisher::Attach(pg::Listener& listener) {
  listener.Subscribe("ferry_lifecycle", [this](const std::string&) { Wake(); });
  listener.OnResync([this] { Wake(); });
}

void LifecyclePublisher::Wake() {
  {
    std::lock_guard lock(mutex_);
    woken_ = true;
  }
  cv_.notify_all();
}

void LifecyclePublisher::Start() {
  thread_ = std::thread([this] {
    const auto logger = log::Get("registry");
    while (!stopping_) {
      try {
        while (!stopping_ && PublishOnce() > 0) {
        }
      } catch (const std::exception& e) {
        logger->warn("lifecycle events not published yet, will retry error=\"{}\"", e.what());
      }
      std::unique_lock lock(mutex_);
      cv_.wait_for(lock, std::chrono::seconds(1), [this] { return woken_ || stopping_.load(); });
      woken_ = false;
    }
  });
}

void LifecyclePublisher::Stop() {
  stopping_ = true;
  Wake();
  if (thread_.joinable()) thread_.join();
}

std::size_t LifecyclePublisher::PublishOnce(std::size_t limit) {
  return pg::WithTransaction(pool_, [&](pqxx::dbtransaction& tx) -> std::size_t {
    // One publisher at a time keeps a device's events in order.
    if (!tx.exec_params1("SELECT pg_try_advisory_xact_lock($1)", kPublisherLockKey)[0].as<bool>()) {
      return 0;
    }
    const pqxx::result rows = tx.exec_params(
        "SELECT id, device_id, op_type, (extract(epoch from operation_time) * 1000000)::bigint,"
        " body::text FROM device_lifecycle_outbox ORDER BY id LIMIT $1",
        static_cast<std::int64_t>(limit));
    if (rows.empty()) return 0;
    std::vector<kafka::OutgoingRecord> records;
    for (const auto& r : rows) {
      const std::string device = r[1].as<std::string>();
      const TimePoint at = FromUnixMicros(r[3].as<std::int64_t>());
      const std::string when = FormatTime(at);
      kafka::OutgoingRecord k;
      k.topic = topic_;
      k.key = device;
      k.value = r[4].as<std::string>();
      k.timestamp_ms = ToUnixMicros(at) / 1000;
      k.headers = {{"iothub-connection-device-id", device},
                   {"iothub-enqueuedtime", when},
                   {"iothub-message-source", "deviceLifecycleEvents"},
                   {"iothub-message-schema", "deviceLifecycleNotification"},
                   {"message-id", "lifecycle-" + r[0].as<std::string>()},
                   {"content-type", "application/json"},
                   {"content-encoding", "utf-8"},
                   {"opType", r[2].as<std::string>()},
                   {"hubName", hub_name_},
                   {"deviceId", device},
                   {"operationTimestamp", when}};
      records.push_back(std::move(k));
    }
    sink_.Deliver(records);
    // Exactly the rows published: one with a lower id may commit later.
    std::string ids;
    for (const auto& r : rows) ids += (ids.empty() ? "" : ",") + std::to_string(r[0].as<std::int64_t>());
    tx.exec0("DELETE FROM device_lifecycle_outbox WHERE id IN (" + ids + ")");
    published_.Increment(static_cast<double>(rows.size()));
    log::Get("registry")->debug("lifecycle events published count={}", rows.size());
    return rows.size();
  });
}

}  // namespace ferry::registry
