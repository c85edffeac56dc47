// devsim: a device simulator for demos, soaks and audits. N devices send
// telemetry through SendEvent at a given rate and receive their C2D messages,
// completing, abandoning or rejecting them by configurable shares; the
// operator side sends C2D messages with every ack mode and follows feedback
// on Watch. Everything Ferry acknowledged is written as JSON lines to
// --record, for an auditor; a progress line each second and a summary at the
// end go to stderr.
#include <atomic>
#include <chrono>
#include <csignal>
#include <fstream>
#include <iostream>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <google/protobuf/util/time_util.h>
#include <grpcpp/grpcpp.h>
#include <nlohmann/json.hpp>

#include "core/auth/connection_string.h"
#include "ferry/v1/c2d.grpc.pb.h"
#include "ferry/v1/device_messaging.grpc.pb.h"
#include "ferry/v1/feedback.grpc.pb.h"
#include "ferry/v1/registry.grpc.pb.h"

namespace {

using namespace std::chrono_literals;
using Steady = std::chrono::steady_clock;

std::atomic<bool> g_stop{false};
// The feedback watcher outlives the rest by a moment, to see the feedback
// of the last settlements.
std::atomic<bool> g_feedback_stop{false};

struct Options {
  std::string endpoint = "127.0.0.1:50051";
  std::string connection_string;
  int devices = 10;
  std::string prefix = "sim-";
  double d2c_rate = 50;  // events a second, all devices
  double c2d_rate = 5;   // C2D sends a second
  double complete = 0.8, abandon = 0.1, reject = 0.1;
  double duration = 0;  // seconds; 0: until SIGINT/SIGTERM
  int receivers = 4;
  int offline = 0;  // the last N devices never receive C2D: their queues fill
  std::string record;
};

struct Counters {
  std::atomic<long> d2c_ok{0}, d2c_failed{0}, c2d_ok{0}, c2d_failed{0}, c2d_queue_full{0},
      received{0}, completed{0}, abandoned{0}, rejected{0}, settle_failed{0}, feedback{0};
};

// Appends JSON lines; thread-safe.
class Recorder {
 public:
  explicit Recorder(const std::string& path) {
    if (!path.empty()) out_.open(path, std::ios::app);
  }
  void Write(const nlohmann::json& j) {
    if (!out_.is_open()) return;
    std::lock_guard lock(mutex_);
    out_ << j.dump() << "\n";
  }
  void Flush() {
    std::lock_guard lock(mutex_);
    if (out_.is_open()) out_.flush();
  }

 private:
  std::mutex mutex_;
  std::ofstream out_;
};

class Sim {
 public:
  Sim(const Options& o, Recorder& rec)
      : o_(o),
        rec_(rec),
        credentials_(ferry::auth::ParseConnectionString(o.connection_string)),
        channel_(grpc::CreateChannel(o.endpoint, grpc::InsecureChannelCredentials())) {}

  std::unique_ptr<grpc::ClientContext> Ctx(std::chrono::seconds deadline = 10s) const {
    auto ctx = std::make_unique<grpc::ClientContext>();
    const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    ctx->AddMetadata("authorization", credentials_.Token(now + 3600));
    if (deadline.count() > 0) ctx->set_deadline(std::chrono::system_clock::now() + deadline);
    return ctx;
  }

  std::string Device(int i) const { return o_.prefix + std::to_string(i); }

  // IoT Hub's error reason Ferry put in the trailing metadata, if any.
  static std::string Reason(const grpc::ClientContext& ctx) {
    const auto& md = ctx.GetServerTrailingMetadata();
    const auto it = md.find("ferry-error-reason");
    return it == md.end() ? "" : std::string(it->second.data(), it->second.size());
  }

  bool CreateDevices() {
    auto stub = ferry::v1::Registry::NewStub(channel_);
    for (int i = 0; i < o_.devices; ++i) {
      ferry::v1::CreateDeviceRequest req;
      req.mutable_device()->set_device_id(Device(i));
      ferry::v1::Device d;
      const grpc::Status s = stub->CreateDevice(Ctx().get(), req, &d);
      if (!s.ok() && s.error_code() != grpc::StatusCode::ALREADY_EXISTS) {
        std::cerr << "devsim: cannot create " << Device(i) << ": " << s.error_message() << "\n";
        return false;
      }
    }
    return true;
  }

  // Sends at `rate` a second, calling `one(n)` for the n-th send.
  template <typename Fn>
  void Paced(double rate, Fn&& one) {
    if (rate <= 0) return;
    const auto start = Steady::now();
    for (long n = 0; !g_stop; ++n) {
      const auto due = start + std::chrono::duration_cast<Steady::duration>(
                                   std::chrono::duration<double>(static_cast<double>(n) / rate));
      while (!g_stop && Steady::now() < due)
        std::this_thread::sleep_for(std::min<Steady::duration>(due - Steady::now(), 50ms));
      if (g_stop) break;
      one(n);
    }
  }

  void D2c() {
    auto stub = ferry::v1::DeviceMessaging::NewStub(channel_);
    Paced(o_.d2c_rate, [&](long n) {
      const std::string device = Device(static_cast<int>(n % o_.devices));
      const std::string id = "d-" + device + "-" + std::to_string(n / o_.devices) + "-" + run_;
      ferry::v1::SendEventRequest req;
      req.set_device_id(device);
      req.mutable_message()->set_message_id(id);
      req.mutable_message()->set_content_type("application/json");
      req.mutable_message()->set_content_encoding("utf-8");
      req.mutable_message()->set_body(
          nlohmann::json{{"seq", n / o_.devices}, {"temp", 20 + n % 10}}.dump());
      ferry::v1::SendEventResponse resp;
      const grpc::Status s = stub->SendEvent(Ctx().get(), req, &resp);
      if (s.ok()) {
        ++c_.d2c_ok;
        rec_.Write({{"kind", "d2c"},
                    {"device", device},
                    {"message_id", id},
                    {"partition", resp.partition()},
                    {"offset", resp.offset()}});
      } else {
        ++c_.d2c_failed;
      }
    });
  }

  void C2d() {
    auto stub = ferry::v1::CloudToDevice::NewStub(channel_);
    const ferry::v1::AckMode acks[] = {ferry::v1::ACK_MODE_NONE, ferry::v1::ACK_MODE_POSITIVE,
                                       ferry::v1::ACK_MODE_NEGATIVE, ferry::v1::ACK_MODE_FULL};
    Paced(o_.c2d_rate, [&](long n) {
      const std::string device = Device(static_cast<int>(n % o_.devices));
      const std::string id = "c-" + std::to_string(n) + "-" + run_;
      ferry::v1::SendC2dRequest req;
      req.set_device_id(device);
      req.mutable_message()->set_message_id(id);
      req.mutable_message()->set_ack(acks[n % 4]);
      req.mutable_message()->set_body("command " + std::to_string(n));
      ferry::v1::SendC2dResponse resp;
      const auto ctx = Ctx();
      const grpc::Status s = stub->Send(ctx.get(), req, &resp);
      if (s.ok()) {
        ++c_.c2d_ok;
        rec_.Write({{"kind", "c2d"},
                    {"device", device},
                    {"message_id", id},
                    {"ack", static_cast<int>(acks[n % 4])},
                    {"sequence", resp.sequence_number()}});
      } else if (Reason(*ctx) == "DeviceMaximumQueueDepthExceeded") {
        ++c_.c2d_queue_full;  // expected for offline devices: the limit holding
      } else {
        ++c_.c2d_failed;
      }
    });
  }

  void Receiver(int index) {
    auto stub = ferry::v1::DeviceMessaging::NewStub(channel_);
    std::mt19937 rng(static_cast<unsigned>(index * 7919 + 17));
    std::uniform_real_distribution<double> share(0, 1);
    while (!g_stop) {
      bool any = false;
      for (int i = index; i < o_.devices - o_.offline && !g_stop; i += o_.receivers) {
        ferry::v1::ReceiveRequest req;
        req.set_device_id(Device(i));
        ferry::v1::ReceiveResponse resp;
        if (!stub->Receive(Ctx().get(), req, &resp).ok() || !resp.has_message()) continue;
        any = true;
        ++c_.received;
        const double x = share(rng);
        const std::string action = x < o_.complete                ? "complete"
                                   : x < o_.complete + o_.abandon ? "abandon"
                                                                  : "reject";
        ferry::v1::SettleRequest settle;
        settle.set_device_id(Device(i));
        settle.set_lock_token(resp.message().lock_token());
        ferry::v1::SettleResponse done;
        grpc::Status s;
        if (action == "complete") s = stub->Complete(Ctx().get(), settle, &done);
        if (action == "abandon") s = stub->Abandon(Ctx().get(), settle, &done);
        if (action == "reject") s = stub->Reject(Ctx().get(), settle, &done);
        if (!s.ok()) {
          ++c_.settle_failed;
          // A call that failed on the way (the replica died, the deadline
          // passed) may still have committed: recorded as unacknowledged,
          // so the audit accepts either outcome for it.
          const auto code = s.error_code();
          if (code == grpc::StatusCode::UNAVAILABLE ||
              code == grpc::StatusCode::DEADLINE_EXCEEDED || code == grpc::StatusCode::CANCELLED ||
              code == grpc::StatusCode::UNKNOWN || code == grpc::StatusCode::INTERNAL) {
            rec_.Write({{"kind", "settle"},
                        {"device", Device(i)},
                        {"message_id", resp.message().message_id()},
                        {"action", action},
                        {"acked", false}});
          }
          continue;
        }
        (action == "complete" ? c_.completed : action == "abandon" ? c_.abandoned : c_.rejected)++;
        rec_.Write({{"kind", "settle"},
                    {"device", Device(i)},
                    {"message_id", resp.message().message_id()},
                    {"action", action},
                    {"delivery_count", resp.message().delivery_count()}});
      }
      if (!any) std::this_thread::sleep_for(100ms);
    }
  }

  void Feedback() {
    auto stub = ferry::v1::Feedback::NewStub(channel_);
    std::string position;
    while (!g_feedback_stop) {
      auto ctx = Ctx(0s);
      ferry::v1::WatchFeedbackRequest req;
      req.set_position(position);
      auto stream = stub->Watch(ctx.get(), req);
      // Cancels the stream at the end of the run; leaves when the stream
      // ends first (a replica went away), so that it is opened again.
      std::atomic<bool> ended{false};
      std::thread canceller([&] {
        while (!g_feedback_stop && !ended) std::this_thread::sleep_for(100ms);
        if (!ended) ctx->TryCancel();
      });
      ferry::v1::FeedbackBatch batch;
      while (stream->Read(&batch)) {
        for (const auto& r : batch.records()) {
          ++c_.feedback;
          rec_.Write({{"kind", "feedback"},
                      {"device", r.device_id()},
                      {"message_id", r.original_message_id()},
                      {"status", r.status_code()}});
        }
        position = batch.position();
      }
      (void)stream->Finish();
      ended = true;
      canceller.join();
      if (!g_feedback_stop)
        std::this_thread::sleep_for(500ms);  // reconnect and resume from the position
    }
  }

  void Progress(std::ostream& out, bool final) {
    out << (final ? "\n" : "\r") << "d2c " << c_.d2c_ok << " (failed " << c_.d2c_failed
        << ") | c2d " << c_.c2d_ok << " (failed " << c_.c2d_failed << ", queue full "
        << c_.c2d_queue_full << ") | received " << c_.received << ": completed " << c_.completed
        << ", abandoned " << c_.abandoned << ", rejected " << c_.rejected << " (failed "
        << c_.settle_failed << ") | feedback " << c_.feedback << (final ? "\n" : "   ")
        << std::flush;
  }

  Counters& counters() { return c_; }

 private:
  const Options& o_;
  Recorder& rec_;
  ferry::auth::ConnectionString credentials_;
  std::shared_ptr<grpc::Channel> channel_;
  Counters c_;
  const std::string run_ =
      std::to_string(std::chrono::system_clock::now().time_since_epoch().count() % 1000000007);
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"devsim: simulated devices and operators against a running Ferry"};
  app.footer(
      "Example: devsim --devices 20 --d2c-rate 100 --c2d-rate 5 --duration 60 --record sim.jsonl");
  Options o;
  app.add_option("-e,--endpoint", o.endpoint, "Ferry gRPC address")
      ->envname("FERRY_ENDPOINT")
      ->capture_default_str();
  app.add_option("--connection-string", o.connection_string,
                 "A policy's connection string (ServiceConnect, "
                 "DeviceConnect, RegistryWrite)")
      ->envname("FERRY_CONNECTION_STRING")
      ->required();
  app.add_option("--devices", o.devices, "Simulated devices")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  app.add_option("--prefix", o.prefix, "Device id prefix")->capture_default_str();
  app.add_option("--d2c-rate", o.d2c_rate, "Telemetry events a second, all devices")
      ->capture_default_str();
  app.add_option("--c2d-rate", o.c2d_rate, "C2D sends a second (ack modes in turn)")
      ->capture_default_str();
  app.add_option("--complete", o.complete, "Share of received C2D messages completed")
      ->capture_default_str();
  app.add_option("--abandon", o.abandon, "Share abandoned")->capture_default_str();
  app.add_option("--reject", o.reject, "Share rejected")->capture_default_str();
  app.add_option("--receivers", o.receivers, "Receiving threads")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  app.add_option("--duration", o.duration, "Seconds to run (0: until Ctrl-C)")
      ->capture_default_str();
  app.add_option("--offline-devices", o.offline,
                 "The last N devices never receive C2D (their queues fill up)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--record", o.record, "Append what Ferry acknowledged here, as JSON lines");
  CLI11_PARSE(app, argc, argv);
  if (std::abs(o.complete + o.abandon + o.reject - 1.0) > 1e-6) {
    std::cerr << "devsim: --complete, --abandon and --reject must add up to 1\n";
    return 2;
  }
  std::signal(SIGINT, [](int) { g_stop = g_feedback_stop = true; });
  std::signal(SIGTERM, [](int) { g_stop = g_feedback_stop = true; });
  try {
    Recorder rec(o.record);
    Sim sim(o, rec);
    if (!sim.CreateDevices()) return 3;
    std::vector<std::thread> threads;
    threads.emplace_back([&] { sim.D2c(); });
    threads.emplace_back([&] { sim.C2d(); });
    std::thread watcher([&] { sim.Feedback(); });
    for (int i = 0; i < o.receivers; ++i) threads.emplace_back([&, i] { sim.Receiver(i); });
    const auto start = Steady::now();
    while (!g_stop) {
      std::this_thread::sleep_for(1s);
      sim.Progress(std::cerr, false);
      rec.Flush();
      if (o.duration > 0 && Steady::now() - start >= std::chrono::duration<double>(o.duration))
        g_stop = true;
    }
    // Everything but the watcher stops; it drains until no feedback came
    // for 5 s (at most 30 s: Watch shows a record once no older transaction
    // is open, checking every second, so a loaded machine needs a while).
    for (auto& t : threads) t.join();
    long seen = sim.counters().feedback;
    auto quiet_since = Steady::now();
    for (const auto until = Steady::now() + 30s;
         Steady::now() < until && Steady::now() - quiet_since < 5s;) {
      std::this_thread::sleep_for(100ms);
      if (sim.counters().feedback != seen) {
        seen = sim.counters().feedback;
        quiet_since = Steady::now();
      }
    }
    g_feedback_stop = true;
    watcher.join();
    rec.Flush();
    sim.Progress(std::cerr, true);
    return sim.counters().d2c_failed + sim.counters().c2d_failed > 0 ? 1 : 0;
  } catch (const std::exception& e) {
    std::cerr << "devsim: " << e.what() << "\n";
    return 2;
  }
}
