// c2dbench: the cloud-to-device figures of BENCHMARKS.md against a running
// ferryd: Send throughput and latency at N calls in flight, Receive+Complete
// cycles a second, the wake-up of a waiting Receive and of a Subscribe
// stream by a Send, and Complete → feedback on Watch. Prints a table and,
// with --json, one JSON object. scripts/bench starts what it needs.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
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

struct Options {
  std::string endpoint = "127.0.0.1:50051";
  std::string connection_string;
  int devices = 1000;
  int in_flight = 64;
  double seconds = 5;
  int samples = 200;
  std::string json;
};

// Latencies in milliseconds: p50, p99, max.
struct Summary {
  double p50 = 0, p99 = 0, max = 0;
  std::size_t n = 0;
};

Summary Summarise(std::vector<double> ms) {
  Summary s;
  s.n = ms.size();
  if (ms.empty()) return s;
  std::sort(ms.begin(), ms.end());
  auto at = [&](double q) {
    return ms[std::min(ms.size() - 1,
                       static_cast<std::size_t>(q * static_cast<double>(ms.size())))];
  };
  s.p50 = at(0.50);
  s.p99 = at(0.99);
  s.max = ms.back();
  return s;
}

double Ms(Steady::duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

class Bench {
 public:
  explicit Bench(const Options& o)
      : o_(o), credentials_(ferry::auth::ParseConnectionString(o.connection_string)) {
    grpc::ChannelArguments args;
    // Four connections, as several clients would open: channels with
    // different arguments do not share a subchannel (one TCP connection).
    for (int i = 0; i < 4; ++i) {
      args.SetInt("ferry.bench.connection", i);
      channels_.push_back(
          grpc::CreateCustomChannel(o.endpoint, grpc::InsecureChannelCredentials(), args));
    }
  }

  std::unique_ptr<grpc::ClientContext> Ctx(std::chrono::seconds deadline = 30s) const {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->AddMetadata("authorization", token_);
    if (deadline.count() > 0) ctx->set_deadline(std::chrono::system_clock::now() + deadline);
    return ctx;
  }
  const std::shared_ptr<grpc::Channel>& Channel(int i) const {
    return channels_[static_cast<std::size_t>(i) % channels_.size()];
  }
  static std::string Device(int i) { return "bench-" + std::to_string(i); }

  void CreateDevices() {
    ParallelFor(o_.devices, [&](int i, int worker) { CreateDevice(Device(i), worker); });
    for (const char* extra : {"bench-wake", "bench-sub", "bench-fb"}) CreateDevice(extra, 0);
  }

  // Phase 1: Send with `in_flight` calls outstanding, round-robin over devices.
  nlohmann::json Sends() {
    std::atomic<long> ok{0}, failed{0};
    std::mutex mutex;
    std::vector<double> latencies;
    const auto start = Steady::now();
    const auto until = start + std::chrono::duration_cast<Steady::duration>(
                                   std::chrono::duration<double>(o_.seconds));
    std::vector<std::thread> threads;
    threads.reserve(static_cast<std::size_t>(o_.in_flight));
    for (int t = 0; t < o_.in_flight; ++t) {
      threads.emplace_back([&, t] {
        auto stub = ferry::v1::CloudToDevice::NewStub(Channel(t));
        std::vector<double> mine;
        for (long n = t; Steady::now() < until; n += o_.in_flight) {
          ferry::v1::SendC2dRequest req;
          req.set_device_id(Device(static_cast<int>(n % o_.devices)));
          req.mutable_message()->set_body(fmt::format("{{\"command\":\"set\",\"n\":{}}}", n));
          ferry::v1::SendC2dResponse resp;
          const auto t0 = Steady::now();
          const grpc::Status s = stub->Send(Ctx().get(), req, &resp);
          mine.push_back(Ms(Steady::now() - t0));
          (s.ok() ? ok : failed)++;
        }
        std::lock_guard lock(mutex);
        latencies.insert(latencies.end(), mine.begin(), mine.end());
      });
    }
    for (auto& th : threads) th.join();
    const double secs = std::chrono::duration<double>(Steady::now() - start).count();
    const Summary s = Summarise(latencies);
    return {{"sends", ok.load()}, {"failed", failed.load()},
            {"seconds", secs},    {"per_second", static_cast<double>(ok) / secs},
            {"p50_ms", s.p50},    {"p99_ms", s.p99},
            {"max_ms", s.max},    {"in_flight", o_.in_flight}};
  }

  // Phase 2: Receive (no wait) + Complete until the queues are empty or
  // the time is up; each thread owns a share of the devices.
  nlohmann::json Cycles() {
    std::atomic<long> cycles{0}, failed{0};
    const auto start = Steady::now();
    const auto until = start + std::chrono::duration_cast<Steady::duration>(
                                   std::chrono::duration<double>(o_.seconds));
    std::vector<std::thread> threads;
    threads.reserve(static_cast<std::size_t>(o_.in_flight));
    for (int t = 0; t < o_.in_flight; ++t) {
      threads.emplace_back([&, t] {
        auto stub = ferry::v1::DeviceMessaging::NewStub(Channel(t));
        std::vector<int> mine;
        for (int d = t; d < o_.devices; d += o_.in_flight) mine.push_back(d);
        while (!mine.empty() && Steady::now() < until) {
          for (std::size_t i = 0; i < mine.size() && Steady::now() < until;) {
            ferry::v1::ReceiveRequest req;
            req.set_device_id(Device(mine[i]));
            ferry::v1::ReceiveResponse resp;
            if (!stub->Receive(Ctx().get(), req, &resp).ok()) {
              ++failed;
              ++i;
              continue;
            }
            if (!resp.has_message()) {  // this device is drained
              mine.erase(mine.begin() + static_cast<long>(i));
              continue;
            }
            ferry::v1::SettleRequest settle;
            settle.set_device_id(Device(mine[i]));
            settle.set_lock_token(resp.message().lock_token());
            ferry::v1::SettleResponse done;
            (stub->Complete(Ctx().get(), settle, &done).ok() ? cycles : failed)++;
            ++i;
          }
        }
      });
    }
    for (auto& th : threads) th.join();
    const double secs = std::chrono::duration<double>(Steady::now() - start).count();
    return {{"cycles", cycles.load()},
            {"failed", failed.load()},
            {"seconds", secs},
            {"per_second", static_cast<double>(cycles) / secs}};
  }

  // Phase 3: a Receive waiting (wait 30 s) is answered by a Send.
  nlohmann::json WakeReceive() {
    auto device = ferry::v1::DeviceMessaging::NewStub(Channel(0));
    auto cloud = ferry::v1::CloudToDevice::NewStub(Channel(1));
    std::vector<double> ms;
    for (int i = 0; i < o_.samples; ++i) {
      std::atomic<bool> returned{false};
      Steady::time_point got;
      ferry::v1::ReceiveResponse resp;
      std::thread receiver([&] {
        ferry::v1::ReceiveRequest req;
        req.set_device_id("bench-wake");
        *req.mutable_wait() = google::protobuf::util::TimeUtil::SecondsToDuration(30);
        (void)device->Receive(Ctx(60s).get(), req, &resp);
        got = Steady::now();
        returned = true;
      });
      std::this_thread::sleep_for(20ms);  // the Receive is waiting on the server by now
      ferry::v1::SendC2dRequest req;
      req.set_device_id("bench-wake");
      req.mutable_message()->set_body("wake");
      ferry::v1::SendC2dResponse sent;
      const auto t0 = Steady::now();
      const bool ok = cloud->Send(Ctx().get(), req, &sent).ok();
      receiver.join();
      if (ok && resp.has_message()) {
        ms.push_back(Ms(got - t0));
        Complete(*device, "bench-wake", resp.message().lock_token());
      }
    }
    const Summary s = Summarise(ms);
    return {{"samples", s.n}, {"p50_ms", s.p50}, {"p99_ms", s.p99}, {"max_ms", s.max}};
  }

  // Phase 4: a Subscribe stream is woken by a Send.
  nlohmann::json WakeSubscribe() {
    auto device = ferry::v1::DeviceMessaging::NewStub(Channel(0));
    auto cloud = ferry::v1::CloudToDevice::NewStub(Channel(1));
    auto ctx = Ctx(0s);
    ferry::v1::SubscribeRequest sreq;
    sreq.set_device_id("bench-sub");
    auto stream = device->Subscribe(ctx.get(), sreq);
    std::vector<double> ms;
    std::this_thread::sleep_for(100ms);
    for (int i = 0; i < o_.samples; ++i) {
      ferry::v1::SendC2dRequest req;
      req.set_device_id("bench-sub");
      req.mutable_message()->set_body("wake");
      ferry::v1::SendC2dResponse sent;
      const auto t0 = Steady::now();
      if (!cloud->Send(Ctx().get(), req, &sent).ok()) continue;
      ferry::v1::ReceivedMessage m;
      if (!stream->Read(&m)) break;
      ms.push_back(Ms(Steady::now() - t0));
      Complete(*device, "bench-sub", m.lock_token());
    }
    ctx->TryCancel();
    (void)stream->Finish();
    const Summary s = Summarise(ms);
    return {{"samples", s.n}, {"p50_ms", s.p50}, {"p99_ms", s.p99}, {"max_ms", s.max}};
  }

  // Phase 5: Complete of a message sent with ack=positive → its feedback
  // record on a Watch stream.
  nlohmann::json Feedback() {
    auto device = ferry::v1::DeviceMessaging::NewStub(Channel(0));
    auto cloud = ferry::v1::CloudToDevice::NewStub(Channel(1));
    auto feedback = ferry::v1::Feedback::NewStub(Channel(2));
    auto ctx = Ctx(0s);
    auto stream = feedback->Watch(ctx.get(), ferry::v1::WatchFeedbackRequest());
    std::mutex mutex;
    std::condition_variable cv;
    std::map<std::string, Steady::time_point> arrived;
    std::thread reader([&] {
      ferry::v1::FeedbackBatch batch;
      while (stream->Read(&batch)) {
        const auto now = Steady::now();
        std::lock_guard lock(mutex);
        for (const auto& r : batch.records()) arrived.emplace(r.original_message_id(), now);
        cv.notify_all();
      }
    });
    std::vector<double> ms;
    for (int i = 0; i < o_.samples; ++i) {
      const std::string id = fmt::format("fb-{}-{}", i, Steady::now().time_since_epoch().count());
      ferry::v1::SendC2dRequest req;
      req.set_device_id("bench-fb");
      req.mutable_message()->set_message_id(id);
      req.mutable_message()->set_ack(ferry::v1::ACK_MODE_POSITIVE);
      ferry::v1::SendC2dResponse sent;
      if (!cloud->Send(Ctx().get(), req, &sent).ok()) continue;
      ferry::v1::ReceiveRequest rreq;
      rreq.set_device_id("bench-fb");
      *rreq.mutable_wait() = google::protobuf::util::TimeUtil::SecondsToDuration(5);
      ferry::v1::ReceiveResponse got;
      if (!device->Receive(Ctx().get(), rreq, &got).ok() || !got.has_message()) continue;
      const auto t0 = Steady::now();
      Complete(*device, "bench-fb", got.message().lock_token());
      std::unique_lock lock(mutex);
      if (cv.wait_for(lock, 10s, [&] { return arrived.count(id) > 0; }))
        ms.push_back(Ms(arrived[id] - t0));
    }
    ctx->TryCancel();
    reader.join();
    (void)stream->Finish();
    const Summary s = Summarise(ms);
    return {{"samples", s.n}, {"p50_ms", s.p50}, {"p99_ms", s.p99}, {"max_ms", s.max}};
  }

 private:
  void CreateDevice(const std::string& id, int worker) {
    auto stub = ferry::v1::Registry::NewStub(Channel(worker));
    ferry::v1::CreateDeviceRequest req;
    req.mutable_device()->set_device_id(id);
    ferry::v1::Device d;
    const grpc::Status s = stub->CreateDevice(Ctx().get(), req, &d);
    if (!s.ok() && s.error_code() != grpc::StatusCode::ALREADY_EXISTS) {
      throw std::runtime_error("cannot create " + id + ": " + s.error_message());
    }
  }

  void Complete(ferry::v1::DeviceMessaging::Stub& stub, const std::string& device,
                const std::string& token) {
    ferry::v1::SettleRequest settle;
    settle.set_device_id(device);
    settle.set_lock_token(token);
    ferry::v1::SettleResponse done;
    (void)stub.Complete(Ctx().get(), settle, &done);
  }

  void ParallelFor(int n, const std::function<void(int, int)>& fn) {
    std::vector<std::thread> threads;
    std::atomic<int> next{0};
    std::mutex error_mutex;
    std::exception_ptr error;
    threads.reserve(16);
    for (int w = 0; w < 16; ++w) {
      threads.emplace_back([&, w] {
        try {
          for (int i = next++; i < n; i = next++) fn(i, w);
        } catch (...) {
          std::lock_guard lock(error_mutex);
          error = std::current_exception();
        }
      });
    }
    for (auto& t : threads) t.join();
    if (error) std::rethrow_exception(error);
  }

  const Options& o_;
  ferry::auth::ConnectionString credentials_;
  const std::string token_ =
      credentials_.Token(std::chrono::duration_cast<std::chrono::seconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count() +
                         3600);
  std::vector<std::shared_ptr<grpc::Channel>> channels_;
};

void Row(const std::string& name, const std::string& value) {
  std::cout << fmt::format("  {:<44} {}\n", name, value);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"c2dbench: cloud-to-device throughput and latency against a running ferryd"};
  app.footer(
      "Example: c2dbench --endpoint 127.0.0.1:50051 --connection-string \"$OWNER\" --json "
      "c2d.json");
  Options o;
  app.add_option("-e,--endpoint", o.endpoint, "ferryd gRPC address")->capture_default_str();
  app.add_option("--connection-string", o.connection_string,
                 "A policy with RegistryWrite, ServiceConnect, DeviceConnect")
      ->envname("FERRY_CONNECTION_STRING")
      ->required();
  app.add_option("--devices", o.devices, "Devices the sends spread over")->capture_default_str();
  app.add_option("--in-flight", o.in_flight,
                 "Concurrent calls in the Send and Receive+Complete phases")
      ->capture_default_str();
  app.add_option("--seconds", o.seconds, "Length of the Send and Receive+Complete phases")
      ->capture_default_str();
  app.add_option("--samples", o.samples, "Samples of each latency figure")->capture_default_str();
  app.add_option("--json", o.json, "Write the figures here as one JSON object");
  CLI11_PARSE(app, argc, argv);
  try {
    Bench bench(o);
    bench.CreateDevices();
    nlohmann::json out;
    out["send"] = bench.Sends();
    out["receive_complete"] = bench.Cycles();
    out["wake_receive"] = bench.WakeReceive();
    out["wake_subscribe"] = bench.WakeSubscribe();
    out["complete_to_feedback"] = bench.Feedback();
    const auto& s = out["send"];
    Row(fmt::format("C2D Send, {} in flight", o.in_flight),
        fmt::format("{:.0f}/s  p50 {:.1f} ms  p99 {:.1f} ms  ({} sent, {} failed)",
                    s["per_second"].get<double>(), s["p50_ms"].get<double>(),
                    s["p99_ms"].get<double>(), s["sends"].get<long>(), s["failed"].get<long>()));
    const auto& c = out["receive_complete"];
    Row("Receive+Complete cycles",
        fmt::format("{:.0f}/s  ({} cycles, {} failed)", c["per_second"].get<double>(),
                    c["cycles"].get<long>(), c["failed"].get<long>()));
    for (const auto& [key, label] :
         {std::pair{"wake_receive", "Send -> waiting Receive"},
          std::pair{"wake_subscribe", "Send -> Subscribe stream"},
          std::pair{"complete_to_feedback", "Complete -> feedback on Watch"}}) {
      const auto& l = out[key];
      Row(label, fmt::format("p50 {:.1f} ms  p99 {:.1f} ms  max {:.1f} ms  ({} samples)",
                             l["p50_ms"].get<double>(), l["p99_ms"].get<double>(),
                             l["max_ms"].get<double>(), l["samples"].get<std::size_t>()));
    }
    if (!o.json.empty()) std::ofstream(o.json) << out.dump(2) << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "c2dbench: " << e.what() << "\n";
    return 1;
  }
}
