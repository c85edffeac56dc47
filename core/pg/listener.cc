#include "core/pg/listener.h"

#include <chrono>

#include <pqxx/pqxx>
#include <prometheus/counter.h>

#include "core/log.h"
#include "core/metrics.h"
#include "core/pg/pool.h"

namespace ferry::pg {
namespace {

class Receiver final : public pqxx::notification_receiver {
 public:
  Receiver(pqxx::connection_base& conn, const std::string& channel,
           const std::vector<std::function<void(const std::string&)>>& callbacks,
           prometheus::Counter& counter)
      : pqxx::notification_receiver(conn, channel), callbacks_(callbacks), counter_(counter) {}

  void operator()(const std::string& payload, int) override {
    counter_.Increment();
    for (const auto& cb : callbacks_) cb(payload);
  }

 private:
  const std::vector<std::function<void(const std::string&)>>& callbacks_;
  prometheus::Counter& counter_;
};

}  // namespace

Listener::Listener(Pool& pool, prometheus::Registry& registry)
    : pool_(pool),
      reconnects_(metrics::Counter(registry, "ferry_pg_listener_reconnects_total",
                                   "Times the LISTEN connection was (re)established.")),
      notifications_(metrics::Counter(registry, "ferry_pg_notifications_total",
                                      "PostgreSQL notifications received.")) {}

Listener::~Listener() {
  Stop();
}

void Listener::Subscribe(const std::string& channel,
                         std::function<void(const std::string&)> on_notify) {
  subscribers_[channel].push_back(std::move(on_notify));
}

void Listener::OnResync(std::function<void()> resync) {
  resyncs_.push_back(std::move(resync));
}

void Listener::Start() {
  thread_ = std::thread([this] { Run(); });
}

void Listener::Stop() {
  stopping_ = true;
  if (thread_.joinable()) thread_.join();
}

void Listener::Resync() {
  for (const auto& r : resyncs_) r();
}

void Listener::Run() {
  static const auto logger = log::Get("pg");
  auto backoff = std::chrono::milliseconds(100);
  while (!stopping_) {
    try {
      auto conn = pool_.OpenDedicated();
      std::vector<std::unique_ptr<Receiver>> receivers;
      for (const auto& [channel, callbacks] : subscribers_) {
        receivers.push_back(std::make_unique<Receiver>(*conn, channel, callbacks, notifications_));
      }
      // LISTEN takes effect with the next query; make sure it has.
      pqxx::nontransaction(*conn).exec("SELECT 1");
      connected_ = true;
      reconnects_.Increment();
      backoff = std::chrono::milliseconds(100);
      Resync();
      while (!stopping_) conn->await_notification(0, 200000);
    } catch (const std::exception& e) {
      if (connected_.exchange(false)) {
        logger->warn("listen connection lost error=\"{}\"", e.what());
        Resync();
      }
      if (stopping_) break;
      std::this_thread::sleep_for(backoff);
      backoff = std::min(backoff * 2, std::chrono::milliseconds(2000));
    }
  }
  connected_ = false;
}

}  // namespace ferry::pg
