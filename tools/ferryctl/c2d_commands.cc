#include "tools/ferryctl/c2d_commands.h"

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <google/protobuf/util/time_util.h>

#include "ferry/v1/c2d.grpc.pb.h"
#include "ferry/v1/device_messaging.grpc.pb.h"
#include "ferry/v1/feedback.grpc.pb.h"
#include "tools/ferryctl/ferryctl.h"

namespace ferry::ctl {
namespace {

using google::protobuf::util::TimeUtil;

v1::AckMode AckFromName(const std::string& name) {
  if (name == "positive") return v1::ACK_MODE_POSITIVE;
  if (name == "negative") return v1::ACK_MODE_NEGATIVE;
  if (name == "full") return v1::ACK_MODE_FULL;
  return v1::ACK_MODE_NONE;
}

std::string StateName(v1::C2dState s) {
  switch (s) {
    case v1::C2D_STATE_ENQUEUED:
      return "Enqueued";
    case v1::C2D_STATE_INVISIBLE:
      return "Invisible";
    case v1::C2D_STATE_COMPLETED:
      return "Completed";
    case v1::C2D_STATE_DEAD_LETTERED:
      return "DeadLettered";
    case v1::C2D_STATE_PURGED:
      return "Purged";
    default:
      return "?";
  }
}

// name=value options into a property map; throws CLI::ValidationError.
void AddProperties(const std::vector<std::string>& pairs,
                   google::protobuf::Map<std::string, std::string>& to) {
  for (const auto& p : pairs) {
    const auto eq = p.find('=');
    if (eq == std::string::npos)
      throw CLI::ValidationError("--property", "'" + p + "' is not name=value");
    to[p.substr(0, eq)] = p.substr(eq + 1);
  }
}

class C2dClient final : public Session {
 public:
  using Session::Session;

  int Send(const v1::SendC2dRequest& req) {
    v1::SendC2dResponse resp;
    const grpc::Status s = c2d_->Send(Context().get(), req, &resp);
    if (!s.ok()) return Fail(s);
    if (options_.json) {
      out_ << Json(resp) << "\n";
    } else {
      out_ << (resp.duplicate() ? "duplicate of " : "enqueued ") << resp.message_id()
           << " sequence " << resp.sequence_number() << " at " << Time(resp.enqueued_time())
           << "\n";
    }
    return kExitOk;
  }

  int Purge(const std::string& device) {
    v1::PurgeQueueRequest req;
    req.set_device_id(device);
    v1::PurgeQueueResponse resp;
    const grpc::Status s = c2d_->PurgeQueue(Context().get(), req, &resp);
    if (!s.ok()) return Fail(s);
    out_ << (options_.json ? Json(resp)
                           : "purged " + std::to_string(resp.total_messages_purged()) + " messages")
         << "\n";
    return kExitOk;
  }

  int Queue(const std::string& device, bool all) {
    std::vector<v1::C2dMessageState> messages;
    std::string token;
    do {
      v1::ListQueueRequest req;
      req.set_device_id(device);
      req.set_include_finished(all);
      req.set_page_size(1000);
      req.set_page_token(token);
      v1::ListQueueResponse resp;
      const grpc::Status s = c2d_->ListQueue(Context().get(), req, &resp);
      if (!s.ok()) return Fail(s);
      for (const auto& m : resp.messages()) messages.push_back(m);
      token = resp.next_page_token();
    } while (!token.empty());
    if (options_.json) {
      for (const auto& m : messages) out_ << Json(m) << "\n";
      return kExitOk;
    }
    std::vector<std::vector<std::string>> rows;
    rows.reserve(messages.size());
    for (const auto& m : messages) {
      rows.push_back({std::to_string(m.sequence_number()), m.message_id(), StateName(m.state()),
                      std::to_string(m.delivery_count()), Time(m.expiry_time()),
                      m.outcome().empty() ? "-" : m.outcome()});
    }
    Table(out_, {"SEQUENCE", "MESSAGE_ID", "STATE", "DELIVERIES", "EXPIRES", "OUTCOME"}, rows);
    return kExitOk;
  }

  int Get(const std::string& device, const std::string& message_id, std::int64_t sequence) {
    v1::GetC2dMessageRequest req;
    req.set_device_id(device);
    req.set_message_id(message_id);
    req.set_sequence_number(sequence);
    v1::C2dMessageState m;
    const grpc::Status s = c2d_->GetMessage(Context().get(), req, &m);
    if (!s.ok()) return Fail(s);
    if (options_.json) {
      out_ << Json(m) << "\n";
      return kExitOk;
    }
    Table(out_, {"FIELD", "VALUE"},
          {{"device_id", m.device_id()},
           {"sequence_number", std::to_string(m.sequence_number())},
           {"message_id", m.message_id()},
           {"state", StateName(m.state())},
           {"delivery_count", std::to_string(m.delivery_count())},
           {"lock_until", Time(m.lock_until())},
           {"enqueued_time", Time(m.enqueued_time())},
           {"first_delivered_time", Time(m.first_delivered_time())},
           {"expiry_time", Time(m.expiry_time())},
           {"outcome", m.outcome().empty() ? "-" : m.outcome()},
           {"outcome_time", Time(m.outcome_time())}});
    return kExitOk;
  }

  int Receive(const std::string& device, double wait_seconds) {
    v1::ReceiveRequest req;
    req.set_device_id(device);
    *req.mutable_wait() =
        TimeUtil::MillisecondsToDuration(static_cast<std::int64_t>(wait_seconds * 1000));
    auto ctx = Context(false);
    ctx->set_deadline(std::chrono::system_clock::now() +
                      std::chrono::milliseconds(
                          static_cast<long>((wait_seconds + options_.timeout_seconds) * 1000)));
    v1::ReceiveResponse resp;
    const grpc::Status s = device_->Receive(ctx.get(), req, &resp);
    if (!s.ok()) return Fail(s);
    if (!resp.has_message()) {
      if (!options_.json) err_ << "no message\n";
      return kExitOk;
    }
    const v1::ReceivedMessage& m = resp.message();
    if (options_.json) {
      out_ << Json(m) << "\n";
      return kExitOk;
    }
    std::string props;
    for (const auto& [k, v] : m.properties()) props += (props.empty() ? "" : ",") + k + "=" + v;
    Table(out_, {"FIELD", "VALUE"},
          {{"lock_token", m.lock_token()},
           {"message_id", m.message_id()},
           {"sequence_number", std::to_string(m.sequence_number())},
           {"delivery_count", std::to_string(m.delivery_count())},
           {"ack", m.ack()},
           {"lock_until", Time(m.lock_until())},
           {"expiry_time", Time(m.expiry_time())},
           {"properties", props.empty() ? "-" : props},
           {"body", m.body()}});
    return kExitOk;
  }

  int Settle(const std::string& action, const std::string& device, const std::string& token) {
    v1::SettleRequest req;
    req.set_device_id(device);
    req.set_lock_token(token);
    v1::SettleResponse resp;
    grpc::Status s;
    if (action == "complete") s = device_->Complete(Context().get(), req, &resp);
    if (action == "abandon") s = device_->Abandon(Context().get(), req, &resp);
    if (action == "reject") s = device_->Reject(Context().get(), req, &resp);
    if (!s.ok()) return Fail(s);
    return Done(req, action == "complete"  ? "completed"
                     : action == "abandon" ? "abandoned"
                                           : "rejected");
  }

  int SendEvent(const v1::SendEventRequest& req) {
    v1::SendEventResponse resp;
    const grpc::Status s = device_->SendEvent(Context().get(), req, &resp);
    if (!s.ok()) return Fail(s);
    return Done(resp, "sent to partition " + std::to_string(resp.partition()) + " offset " +
                          std::to_string(resp.offset()) + " at " + Time(resp.enqueued_time()));
  }

  void PrintFeedback(const v1::FeedbackBatch& batch) {
    if (options_.json) {
      for (const auto& r : batch.records()) out_ << Json(r) << "\n";
      return;
    }
    for (const auto& r : batch.records()) {
      out_ << Time(r.enqueued_time()) << "  " << r.device_id() << "  " << r.original_message_id()
           << "  " << r.status_code() << "  " << r.description() << "\n";
    }
  }

  int FeedbackReceive(int lock_seconds) {
    v1::ReceiveFeedbackRequest req;
    if (lock_seconds > 0) *req.mutable_lock_duration() = TimeUtil::SecondsToDuration(lock_seconds);
    v1::FeedbackBatch batch;
    const grpc::Status s = feedback_->Receive(Context().get(), req, &batch);
    if (!s.ok()) return Fail(s);
    if (batch.records().empty()) {
      if (!options_.json) err_ << "no feedback\n";
      return kExitOk;
    }
    if (options_.json) {
      out_ << Json(batch) << "\n";
      return kExitOk;
    }
    out_ << "lock token: " << batch.lock_token() << " (until " << Time(batch.lock_until()) << ")\n";
    PrintFeedback(batch);
    return kExitOk;
  }

  int FeedbackSettle(bool complete, const std::string& token) {
    v1::SettleFeedbackRequest req;
    req.set_lock_token(token);
    v1::SettleFeedbackResponse resp;
    const grpc::Status s = complete ? feedback_->Complete(Context().get(), req, &resp)
                                    : feedback_->Abandon(Context().get(), req, &resp);
    if (!s.ok()) return Fail(s);
    return Done(req, complete ? "completed" : "abandoned");
  }

  int FeedbackWatch(const std::string& position, long count) {
    v1::WatchFeedbackRequest req;
    req.set_position(position);
    auto ctx = Context(false);
    auto stream = feedback_->Watch(ctx.get(), req);
    v1::FeedbackBatch batch;
    long seen = 0;
    while (stream->Read(&batch)) {
      v1::FeedbackBatch shown;
      for (const auto& r : batch.records()) {
        if (count > 0 && seen >= count) break;
        *shown.add_records() = r;
        ++seen;
      }
      PrintFeedback(shown);
      out_.flush();
      if (count > 0 && seen >= count) {
        ctx->TryCancel();
        break;
      }
    }
    const grpc::Status s = stream->Finish();
    if (count > 0 && seen >= count) return kExitOk;
    return s.ok() ? kExitOk : Fail(s);
  }

 private:
  std::unique_ptr<v1::Feedback::Stub> feedback_ = v1::Feedback::NewStub(channel_);
  std::unique_ptr<v1::CloudToDevice::Stub> c2d_ = v1::CloudToDevice::NewStub(channel_);
  std::unique_ptr<v1::DeviceMessaging::Stub> device_ = v1::DeviceMessaging::NewStub(channel_);
};

}  // namespace

void AddC2dCommands(CLI::App& app, const Options& options, std::ostream& out, std::ostream& err,
                    int& code) {
  struct State {
    std::string device, body, message_id, correlation_id, user_id, ack = "none", content_type,
                                                                   content_encoding, expiry, token;
    std::vector<std::string> properties;
    std::optional<long> ttl;
    std::int64_t sequence = 0;
    bool all = false;
    double wait = 0;
    int lock = 0;
    long count = 0;
  };
  auto st = std::make_shared<State>();
  auto client = [&options, &out, &err] { return C2dClient(options, out, err); };

  CLI::App* c2d =
      app.add_subcommand("c2d", "Cloud-to-device messages (needs ServiceConnect)")
          ->footer("Example: ferryctl c2d send thermostat-7 --body 'set 21' --ack full");
  c2d->require_subcommand(1);
  CLI::App* send =
      c2d->add_subcommand("send", "Enqueue a message for a device")
          ->footer(
              "Example: ferryctl c2d send thermostat-7 --body '{\"target\":21}' --ack full "
              "--ttl 600 --property kind=setpoint");
  send->add_option("device-id", st->device, "Device id")->required();
  send->add_option("--body", st->body, "Message body");
  send->add_option("--message-id", st->message_id,
                   "Message id (generated when omitted; sends are idempotent by it)");
  send->add_option("--correlation-id", st->correlation_id, "Correlation id");
  send->add_option("--user-id", st->user_id, "User id");
  send->add_option("--ack", st->ack, "Feedback wanted: none, positive, negative, full")
      ->check(CLI::IsMember({"none", "positive", "negative", "full"}))
      ->capture_default_str();
  auto* ttl = send->add_option("--ttl", st->ttl,
                               "Seconds to live (60 to 172800; default: ferryd's, 1 hour)");
  send->add_option("--expiry", st->expiry, "Absolute expiry (RFC 3339)")->excludes(ttl);
  send->add_option("--content-type", st->content_type, "Content type");
  send->add_option("--content-encoding", st->content_encoding, "Content encoding");
  send->add_option("--property", st->properties, "Application property name=value (repeatable)");
  send->callback([st, client, &code] {
    v1::SendC2dRequest req;
    req.set_device_id(st->device);
    v1::C2dMessage* m = req.mutable_message();
    m->set_body(st->body);
    m->set_message_id(st->message_id);
    m->set_correlation_id(st->correlation_id);
    m->set_user_id(st->user_id);
    m->set_ack(AckFromName(st->ack));
    if (st->ttl) *m->mutable_ttl() = TimeUtil::SecondsToDuration(*st->ttl);
    if (!st->expiry.empty()) *m->mutable_expiry_time() = TimeOption("--expiry", st->expiry);
    m->set_content_type(st->content_type);
    m->set_content_encoding(st->content_encoding);
    AddProperties(st->properties, *m->mutable_properties());
    code = client().Send(req);
  });
  CLI::App* purge = c2d->add_subcommand("purge", "Remove a device's pending messages")
                        ->footer("Example: ferryctl c2d purge thermostat-7");
  purge->add_option("device-id", st->device, "Device id")->required();
  purge->callback([st, client, &code] { code = client().Purge(st->device); });
  CLI::App* queue =
      c2d->add_subcommand("queue", "A device's pending messages (--all: finished ones too)")
          ->footer("Example: ferryctl c2d queue thermostat-7 --all");
  queue->add_option("device-id", st->device, "Device id")->required();
  queue->add_flag("--all", st->all,
                  "Include Completed, DeadLettered and Purged messages still kept");
  queue->callback([st, client, &code] { code = client().Queue(st->device, st->all); });
  CLI::App* get = c2d->add_subcommand("get", "One message's state")
                      ->footer("Example: ferryctl c2d get thermostat-7 --message-id m1");
  get->add_option("device-id", st->device, "Device id")->required();
  auto* by_id = get->add_option("--message-id", st->message_id, "Message id");
  get->add_option("--sequence", st->sequence, "Sequence number")->excludes(by_id);
  get->callback(
      [st, client, &code] { code = client().Get(st->device, st->message_id, st->sequence); });

  CLI::App* device =
      app.add_subcommand("device",
                         "Act as a device: send events, receive and settle C2D messages "
                         "(needs DeviceConnect: a device connection string, or a "
                         "policy's)")
          ->footer("Example: ferryctl device receive thermostat-7 --wait 30");
  device->require_subcommand(1);
  CLI::App* receive =
      device->add_subcommand("receive", "Lock the next message (waits up to --wait seconds)")
          ->footer("Example: ferryctl device receive thermostat-7 --wait 30");
  receive->add_option("device-id", st->device, "Device id")->required();
  receive->add_option("--wait", st->wait, "Seconds to wait for a message (0 to 120)")
      ->check(SecondsIn(0, 120))
      ->capture_default_str();
  receive->callback([st, client, &code] { code = client().Receive(st->device, st->wait); });
  for (const std::string action : {"complete", "abandon", "reject"}) {
    CLI::App* cmd =
        device
            ->add_subcommand(action, action == "complete" ? "Complete a received message"
                                     : action == "abandon"
                                         ? "Give a message back (delivery count + 1)"
                                         : "Reject a message (dead-letters it)")
            ->footer("Example: ferryctl device " + action + " thermostat-7 LOCK_TOKEN");
    cmd->add_option("device-id", st->device, "Device id")->required();
    cmd->add_option("lock-token", st->token, "The lock token from receive")->required();
    cmd->callback(
        [st, client, action, &code] { code = client().Settle(action, st->device, st->token); });
  }
  CLI::App* dsend =
      device->add_subcommand("send", "Send a device-to-cloud event (SendEvent), as the device")
          ->footer(
              "Answers once Kafka acknowledged the event: its partition and offset.\n"
              "Example: ferryctl device send thermostat-7 --body '{\"temp\":31}' "
              "--content-type application/json --content-encoding utf-8 --property site=plant-7");
  dsend->add_option("device-id", st->device, "Device id")->required();
  dsend->add_option("--body", st->body, "Event body");
  dsend->add_option("--message-id", st->message_id, "Message id");
  dsend->add_option("--correlation-id", st->correlation_id, "Correlation id");
  dsend->add_option("--content-type", st->content_type, "Content type");
  dsend->add_option("--content-encoding", st->content_encoding, "Content encoding");
  dsend->add_option("--property", st->properties, "Application property name=value (repeatable)");
  dsend->callback([st, client, &code] {
    v1::SendEventRequest req;
    req.set_device_id(st->device);
    v1::D2cMessage* m = req.mutable_message();
    m->set_body(st->body);
    m->set_message_id(st->message_id);
    m->set_correlation_id(st->correlation_id);
    m->set_content_type(st->content_type);
    m->set_content_encoding(st->content_encoding);
    AddProperties(st->properties, *m->mutable_properties());
    code = client().SendEvent(req);
  });

  CLI::App* feedback =
      app.add_subcommand("feedback", "Delivery feedback of C2D messages (needs ServiceConnect)")
          ->footer("Example: ferryctl feedback watch");
  feedback->require_subcommand(1);
  CLI::App* freceive =
      feedback->add_subcommand("receive", "Take a locked batch of at most 64 records")
          ->footer("Example: ferryctl feedback receive --lock-seconds 120");
  freceive->add_option("--lock-seconds", st->lock, "Lock duration, 5 to 300 (default 60)");
  freceive->callback([st, client, &code] { code = client().FeedbackReceive(st->lock); });
  for (const bool complete : {true, false}) {
    CLI::App* cmd =
        feedback
            ->add_subcommand(complete ? "complete" : "abandon",
                             complete ? "Complete a received batch" : "Give a batch back")
            ->footer(std::string("Example: ferryctl feedback ") +
                     (complete ? "complete" : "abandon") + " LOCK_TOKEN");
    cmd->add_option("lock-token", st->token, "The batch's lock token")->required();
    cmd->callback(
        [st, client, complete, &code] { code = client().FeedbackSettle(complete, st->token); });
  }
  CLI::App* fwatch =
      feedback
          ->add_subcommand("watch", "Follow every feedback record as it is written (Ctrl-C stops)")
          ->footer("Example: ferryctl feedback watch --count 1");
  fwatch->add_option("--after", st->token,
                     "Resume after this position (default: every record still kept)");
  fwatch->add_option("--count", st->count, "Stop after this many records (0: never)");
  fwatch->callback([st, client, &code] { code = client().FeedbackWatch(st->token, st->count); });
}

}  // namespace ferry::ctl
