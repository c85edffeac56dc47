#include "tools/ferryctl/d2c_commands.h"

#include <csignal>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ferry/v1/events.grpc.pb.h"
#include "ferry/v1/routing.grpc.pb.h"
#include "tools/ferryctl/ferryctl.h"

namespace ferry::ctl {
namespace {

// Body text for a table cell: printable ASCII, cut at 60 characters.
std::string Preview(const std::string& body) {
  std::string out;
  for (const char c : body.substr(0, 60)) out += (c >= 0x20 && c < 0x7f) ? c : '.';
  if (body.size() > 60) out += "...";
  return out;
}

class D2cClient final : public Session {
 public:
  using Session::Session;

  void PrintEvents(const google::protobuf::RepeatedPtrField<v1::StoredEvent>& events, bool header) {
    if (options_.json) {
      for (const auto& e : events) out_ << Json(e) << "\n";
      return;
    }
    std::vector<std::vector<std::string>> rows;
    for (const auto& e : events) {
      rows.push_back({Time(e.enqueued_time()), e.device_id(),
                      std::to_string(e.partition()) + "/" + std::to_string(e.offset()),
                      e.message_id().empty() ? "-" : e.message_id(), Preview(e.body())});
    }
    if (header) {
      Table(out_, {"ENQUEUED", "DEVICE", "PARTITION/OFFSET", "MESSAGE_ID", "BODY"}, rows);
    } else {
      for (const auto& r : rows)
        out_ << r[0] << "  " << r[1] << "  " << r[2] << "  " << r[3] << "  " << r[4] << "\n";
    }
  }

  int Read(v1::ReadEventsRequest req, long limit) {
    google::protobuf::RepeatedPtrField<v1::StoredEvent> all;
    std::string token = req.page_token();
    while (limit <= 0 || all.size() < limit) {
      req.set_page_token(token);
      v1::ReadEventsResponse resp;
      const grpc::Status s = events_->ReadEvents(Context().get(), req, &resp);
      if (!s.ok()) return Fail(s);
      for (const auto& e : resp.events()) {
        if (limit > 0 && all.size() >= limit) break;
        *all.Add() = e;
      }
      token = all.empty() ? resp.next_page_token() : all.rbegin()->position();
      if (resp.events().empty()) break;
    }
    PrintEvents(all, true);
    if (!options_.json) out_ << "next position: " << token << "\n";
    return kExitOk;
  }

  int Tail(const v1::TailEventsRequest& req, long count) {
    auto ctx = Context(false);
    std::unique_ptr<grpc::ClientReader<v1::TailEventsResponse>> stream =
        events_->TailEvents(ctx.get(), req);
    v1::TailEventsResponse batch;
    long seen = 0;
    while (stream->Read(&batch)) {
      google::protobuf::RepeatedPtrField<v1::StoredEvent> events;
      for (const auto& e : batch.events()) {
        if (count > 0 && seen >= count) break;
        *events.Add() = e;
        ++seen;
      }
      PrintEvents(events, false);
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

  int ListCheckpoints(const std::string& group) {
    v1::ListCheckpointsRequest req;
    req.set_consumer_group(group);
    v1::ListCheckpointsResponse resp;
    const grpc::Status s = events_->ListCheckpoints(Context().get(), req, &resp);
    if (!s.ok()) return Fail(s);
    PrintCheckpoints(resp.checkpoints());
    return kExitOk;
  }

  int Reset(const v1::ResetCheckpointsRequest& req) {
    v1::ResetCheckpointsResponse resp;
    const grpc::Status s = events_->ResetCheckpoints(Context().get(), req, &resp);
    if (!s.ok()) return Fail(s);
    PrintCheckpoints(resp.checkpoints());
    return kExitOk;
  }

  int ListDeadLetters(v1::ListDeadLettersRequest req, long limit) {
    std::vector<v1::DeadLetter> all;
    while (limit <= 0 || static_cast<long>(all.size()) < limit) {
      v1::ListDeadLettersResponse resp;
      const grpc::Status s = events_->ListDeadLetters(Context().get(), req, &resp);
      if (!s.ok()) return Fail(s);
      for (const auto& d : resp.dead_letters()) all.push_back(d);
      if (resp.next_page_token().empty()) break;
      req.set_page_token(resp.next_page_token());
    }
    if (limit > 0 && static_cast<long>(all.size()) > limit)
      all.resize(static_cast<std::size_t>(limit));
    if (options_.json) {
      for (const auto& d : all) out_ << Json(d) << "\n";
      return kExitOk;
    }
    std::vector<std::vector<std::string>> rows;
    rows.reserve(all.size());
    for (const auto& d : all) {
      rows.push_back({std::to_string(d.partition()) + "/" + std::to_string(d.offset()), d.reason(),
                      Time(d.dead_lettered_time()), d.detail(), Preview(d.value())});
    }
    Table(out_, {"PARTITION/OFFSET", "REASON", "DEAD_LETTERED", "DETAIL", "VALUE"}, rows);
    return kExitOk;
  }

  int Redrive(const v1::RedriveDeadLettersRequest& req) {
    v1::RedriveDeadLettersResponse resp;
    const grpc::Status s = events_->RedriveDeadLetters(Context().get(), req, &resp);
    if (!s.ok()) return Fail(s);
    if (options_.json) {
      for (const auto& r : resp.results()) out_ << Json(r) << "\n";
    } else {
      std::vector<std::vector<std::string>> rows;
      for (const auto& r : resp.results()) {
        rows.push_back({std::to_string(r.partition()) + "/" + std::to_string(r.offset()),
                        r.outcome(), r.reason().empty() ? "-" : r.reason()});
      }
      Table(out_, {"PARTITION/OFFSET", "OUTCOME", "REASON"}, rows);
    }
    return kExitOk;
  }

  int SetEnrichment(const std::string& key, const std::string& value,
                    const std::vector<std::string>& endpoints) {
    v1::SetEnrichmentRequest req;
    req.mutable_enrichment()->set_key(key);
    req.mutable_enrichment()->set_value(value);
    for (const auto& e : endpoints) req.mutable_enrichment()->add_endpoints(e);
    v1::Enrichment resp;
    const grpc::Status s = routing_->SetEnrichment(Context().get(), req, &resp);
    if (!s.ok()) return Fail(s);
    out_ << (options_.json ? Json(resp) : "set enrichment " + key) << "\n";
    return kExitOk;
  }

  int ListEnrichments() {
    v1::ListEnrichmentsResponse resp;
    const grpc::Status s =
        routing_->ListEnrichments(Context().get(), v1::ListEnrichmentsRequest(), &resp);
    if (!s.ok()) return Fail(s);
    if (options_.json) {
      for (const auto& e : resp.enrichments()) out_ << Json(e) << "\n";
      return kExitOk;
    }
    std::vector<std::vector<std::string>> rows;
    for (const auto& e : resp.enrichments()) {
      std::string endpoints;
      for (const auto& n : e.endpoints()) endpoints += (endpoints.empty() ? "" : ",") + n;
      rows.push_back({e.key(), e.value(), endpoints});
    }
    Table(out_, {"KEY", "VALUE", "ENDPOINTS"}, rows);
    return kExitOk;
  }

  int DeleteEnrichment(const std::string& key) {
    v1::DeleteEnrichmentRequest req;
    req.set_key(key);
    v1::DeleteEnrichmentResponse resp;
    const grpc::Status s = routing_->DeleteEnrichment(Context().get(), req, &resp);
    if (!s.ok()) return Fail(s);
    return Done(req, "deleted enrichment " + key);
  }

 private:
  void PrintCheckpoints(const google::protobuf::RepeatedPtrField<v1::Checkpoint>& checkpoints) {
    if (options_.json) {
      for (const auto& c : checkpoints) out_ << Json(c) << "\n";
      return;
    }
    std::vector<std::vector<std::string>> rows;
    for (const auto& c : checkpoints) {
      rows.push_back({c.topic(), std::to_string(c.partition()),
                      c.next_offset() < 0 ? "-" : std::to_string(c.next_offset()),
                      c.lag() < 0 ? "?" : std::to_string(c.lag()), std::to_string(c.epoch()),
                      c.owner().empty() ? "-" : c.owner(), Time(c.last_commit_time()),
                      std::to_string(c.dropped()), std::to_string(c.replay_skipped()),
                      std::to_string(c.lost())});
    }
    Table(out_,
          {"TOPIC", "PARTITION", "NEXT_OFFSET", "LAG", "EPOCH", "OWNER", "LAST_COMMIT", "DROPPED",
           "REPLAY_SKIPPED", "LOST"},
          rows);
  }

  std::unique_ptr<v1::Events::Stub> events_ = v1::Events::NewStub(channel_);
  std::unique_ptr<v1::Routing::Stub> routing_ = v1::Routing::NewStub(channel_);
};

// "P:O" → a dead-letter reference.
v1::DeadLetterRef ParseRef(const std::string& text) {
  v1::DeadLetterRef ref;
  int p = 0;
  long long o = 0;
  char tail = 0;
  if (std::sscanf(text.c_str(), "%d:%lld%c", &p, &o, &tail) != 2 || p < 0 || o < 0) {
    throw CLI::ValidationError("--record", "'" + text + "' is not PARTITION:OFFSET");
  }
  ref.set_partition(p);
  ref.set_offset(o);
  return ref;
}

}  // namespace

void AddD2cCommands(CLI::App& app, const Options& options, std::ostream& out, std::ostream& err,
                    int& code) {
  struct State {
    std::string group, device, from, to, position, page_token, reason, topic, time, key, value;
    std::vector<std::string> endpoints, records;
    std::vector<int> partitions;
    std::optional<int> partition;
    std::optional<long> offset;
    bool earliest = false, latest = false;
    long limit = 0, read_limit = 100, count = 0;
    int page_size = 0;
  };
  auto st = std::make_shared<State>();
  auto client = [&options, &out, &err] { return D2cClient(options, out, err); };

  CLI::App* events =
      app.add_subcommand("events", "Read back landed D2C events (needs ServiceConnect)")
          ->footer("Example: ferryctl events tail --device thermostat-7");
  events->require_subcommand(1);
  CLI::App* read =
      events->add_subcommand("read", "Events in landing order, by device and enqueued time")
          ->footer(
              "Example: ferryctl events read --device thermostat-7 --from "
              "2026-11-26T00:00:00Z --limit 20");
  read->add_option("--device", st->device, "Only this device");
  read->add_option("--from", st->from, "Enqueued at or after (RFC 3339)");
  read->add_option("--to", st->to, "Enqueued before (RFC 3339)");
  read->add_option("--after", st->position, "Start after this position (from a previous read)");
  read->add_option("--limit", st->read_limit, "At most this many events (0: all)")
      ->capture_default_str();
  read->add_option("--page-size", st->page_size, "Events per call, 1 to 1000 (default 100)");
  read->add_option("--group", st->group, "Consumer group (default: ferryd's)");
  read->callback([st, client, &code] {
    v1::ReadEventsRequest req;
    req.set_consumer_group(st->group);
    req.set_device_id(st->device);
    if (!st->from.empty()) *req.mutable_start_time() = TimeOption("--from", st->from);
    if (!st->to.empty()) *req.mutable_end_time() = TimeOption("--to", st->to);
    req.set_page_size(st->page_size);
    req.set_page_token(st->position);
    code = client().Read(req, st->read_limit);
  });
  CLI::App* tail = events->add_subcommand("tail", "Follow events as they land (Ctrl-C stops)")
                       ->footer("Example: ferryctl events tail --device thermostat-7 --count 10");
  tail->add_option("--device", st->device, "Only this device");
  tail->add_option("--after", st->position, "Resume after this position (default: from now)");
  tail->add_option("--count", st->count, "Stop after this many events (0: never)");
  tail->add_option("--group", st->group, "Consumer group (default: ferryd's)");
  tail->callback([st, client, &code] {
    v1::TailEventsRequest req;
    req.set_consumer_group(st->group);
    req.set_device_id(st->device);
    req.set_position(st->position);
    code = client().Tail(req, st->count);
  });

  CLI::App* checkpoints =
      app.add_subcommand("checkpoints", "D2C checkpoints per partition (needs ServiceConnect)")
          ->footer("Example: ferryctl checkpoints list");
  checkpoints->require_subcommand(1);
  CLI::App* clist = checkpoints->add_subcommand("list", "Owner, epoch, next offset, lag and counts")
                        ->footer("Example: ferryctl checkpoints list --json");
  clist->add_option("--group", st->group, "Consumer group (default: ferryd's)");
  clist->callback([st, client, &code] { code = client().ListCheckpoints(st->group); });
  CLI::App* reset =
      checkpoints
          ->add_subcommand(
              "reset", "Move checkpoints: the owner seeks there and replays (no row lands twice)")
          ->footer("Example: ferryctl checkpoints reset --partition 0 --earliest");
  reset->add_option("--partition", st->partitions, "Partition (repeatable; default: all)");
  reset->add_option("--topic", st->topic, "Topic (default: ferryd's D2C topic)");
  reset->add_option("--group", st->group, "Consumer group (default: ferryd's)");
  auto* e = reset->add_flag("--earliest", st->earliest, "The log's first offset");
  auto* l = reset->add_flag("--latest", st->latest, "The log's end (skip what is there)");
  auto* o = reset->add_option("--offset", st->offset, "An offset");
  auto* t =
      reset->add_option("--time", st->time, "The first record at or after this time (RFC 3339)");
  e->excludes(l)->excludes(o)->excludes(t);
  l->excludes(o)->excludes(t);
  o->excludes(t);
  reset->callback([st, client, &code] {
    v1::ResetCheckpointsRequest req;
    req.set_consumer_group(st->group);
    req.set_topic(st->topic);
    for (const int p : st->partitions) req.add_partitions(p);
    if (st->earliest) {
      req.set_earliest(true);
    } else if (st->latest) {
      req.set_latest(true);
    } else if (st->offset) {
      req.set_offset(*st->offset);
    } else if (!st->time.empty()) {
      *req.mutable_time() = TimeOption("--time", st->time);
    } else {
      throw CLI::ValidationError("reset", "give one of --earliest, --latest, --offset, --time");
    }
    code = client().Reset(req);
  });

  CLI::App* dead =
      app.add_subcommand("deadletters", "D2C records that did not land (needs ServiceConnect)")
          ->footer("Example: ferryctl deadletters list --reason out_of_retention");
  dead->require_subcommand(1);
  CLI::App* dlist = dead->add_subcommand("list", "Dead letters by partition and offset")
                        ->footer("Example: ferryctl deadletters list --partition 3 --limit 50");
  dlist->add_option("--reason", st->reason, "Only this reason (e.g. invalid_timestamp)");
  dlist->add_option("--partition", st->partition, "Only this partition");
  dlist->add_option("--limit", st->limit, "At most this many (0: all)");
  dlist->add_option("--group", st->group, "Consumer group (default: ferryd's)");
  dlist->callback([st, client, &code] {
    v1::ListDeadLettersRequest req;
    req.set_consumer_group(st->group);
    req.set_reason(st->reason);
    if (st->partition) req.set_partition(*st->partition);
    req.set_page_size(st->limit > 0 && st->limit < 1000 ? static_cast<int>(st->limit) : 1000);
    code = client().ListDeadLetters(req, st->limit);
  });
  CLI::App* redrive =
      dead->add_subcommand("redrive", "Route dead letters again after a fix; each lands once")
          ->footer(
              "Example: ferryctl deadletters redrive --reason future_timestamp "
              "(or --record 3:1207 --record 3:1208)");
  redrive->add_option("--record", st->records, "PARTITION:OFFSET (repeatable)");
  redrive->add_option("--reason", st->reason, "Without --record: those with this reason");
  redrive->add_option("--partition", st->partition, "Without --record: those of this partition");
  redrive->add_option("--limit", st->limit,
                      "Without --record: at most this many (default 100, max 1000)");
  redrive->add_option("--topic", st->topic, "Topic (default: ferryd's D2C topic)");
  redrive->add_option("--group", st->group, "Consumer group (default: ferryd's)");
  redrive->callback([st, client, &code] {
    v1::RedriveDeadLettersRequest req;
    req.set_consumer_group(st->group);
    req.set_topic(st->topic);
    for (const auto& r : st->records) *req.add_records() = ParseRef(r);
    req.set_reason(st->reason);
    if (st->partition) req.set_partition(*st->partition);
    req.set_limit(static_cast<int>(st->limit));
    code = client().Redrive(req);
  });

  CLI::App* enrich =
      app.add_subcommand("enrichments", "Message enrichments per endpoint (needs ServiceConnect)")
          ->footer("Example: ferryctl enrichments list");
  enrich->require_subcommand(1);
  CLI::App* eset =
      enrich->add_subcommand("set", "Create or replace an enrichment")
          ->footer(
              "Example: ferryctl enrichments set site plant-7 --endpoints alerts,events\n"
              "Values: static text, $iothubname, $device.status (deviceId, generationId, "
              "etag, status, statusReason, connectionState)");
  eset->add_option("key", st->key, "Application property to add")->required();
  eset->add_option("value", st->value, "Its value")->required();
  eset->add_option("--endpoints", st->endpoints, "Endpoints, comma-separated")
      ->delimiter(',')
      ->required();
  eset->callback(
      [st, client, &code] { code = client().SetEnrichment(st->key, st->value, st->endpoints); });
  enrich->add_subcommand("list", "List enrichments")
      ->footer("Example: ferryctl enrichments list --json")
      ->callback([client, &code] { code = client().ListEnrichments(); });
  CLI::App* edel = enrich->add_subcommand("delete", "Delete an enrichment")
                       ->footer("Example: ferryctl enrichments delete site");
  edel->add_option("key", st->key, "Key")->required();
  edel->callback([st, client, &code] { code = client().DeleteEnrichment(st->key); });
}

}  // namespace ferry::ctl
