#include "core/d2c/landing_plan.h"

#include <fmt/format.h>

namespace ferry::d2c {
namespace {

std::chrono::sys_days DayOf(TimePoint t) {
  return std::chrono::floor<std::chrono::days>(t);
}

bool IsLifecycle(const Event& e) {
  const auto it = e.system_properties.find("iothub-message-source");
  return it != e.system_properties.end() && it->second == "deviceLifecycleEvents";
}

// Where the route set sends one event: the store and/or Kafka endpoints.
void Route(ClassifiedRecord& c, const routing::RouteSet& routes,
           std::map<std::string, std::size_t>& undefined) {
  const Event& e = *c.event;
  const bool lifecycle = IsLifecycle(e);
  if (routes.trivial()) {
    c.to_store = !lifecycle && routes.fallback_enabled();
    return;
  }
  routing::QueryInput in;
  in.system_properties = e.system_properties;
  in.application_properties = e.application_properties;
  in.body = e.body;
  in.content_type = e.content_type;
  in.content_encoding = e.content_encoding;
  const routing::RouteDecision d = routes.Route(in, lifecycle);
  for (const std::size_t i : d.undefined_routes) ++undefined[routes.routes()[i].name];
  for (const std::size_t i : d.endpoints) {
    if (i == routes.store_endpoint()) {
      c.to_store = true;
    } else if (routes.endpoints()[i].kafka) {
      c.kafka.push_back(i);
    }
  }
}

// The store takes an event only into a day it has a partition for. The
// Kafka endpoints matched still get it.
void CheckDays(ClassifiedRecord& c, const DayRange& days) {
  const auto day = DayOf(c.event->enqueued_time);
  if (!days.first || day < *days.first) {
    c.dead = DeadLetter{DeadLetterReason::kOutOfRetention,
                        "enqueued before the oldest event-store day " +
                            (days.first ? DayText(*days.first) : std::string("(none)"))};
    c.to_store = false;
  } else if (day > *days.last) {
    c.dead = DeadLetter{DeadLetterReason::kFutureTimestamp,
                        "enqueued after the newest event-store day " + DayText(*days.last)};
    c.to_store = false;
  }
}

const routing::DeviceFields* FieldsOf(const std::map<std::string, routing::DeviceFields>& all,
                                      const std::string& device) {
  const auto it = all.find(device);
  return it == all.end() ? nullptr : &it->second;
}

bool Covered(const ClassifiedRecord& c, const CheckpointState& checkpoint) {
  return checkpoint.next_offset && c.record->offset < *checkpoint.next_offset;
}

bool Replayed(const ClassifiedRecord& c, const CheckpointState& checkpoint) {
  return checkpoint.high_offset && c.record->offset < *checkpoint.high_offset;
}

}  // namespace

std::string DayText(std::chrono::sys_days d) {
  const std::chrono::year_month_day ymd(d);
  return fmt::format("{:04}-{:02}-{:02} 00:00:00+00", static_cast<int>(ymd.year()),
                     static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()));
}

Classified Classify(const std::vector<KafkaRecord>& records, std::size_t begin, std::size_t end,
                    TimePoint now, const DayRange& days, const routing::RouteSet& routes,
                    const std::optional<std::string>& refused) {
  Classified out;
  out.records.reserve(end - begin);
  for (std::size_t i = begin; i < end; ++i) {
    Decoded d = Decode(records[i], now);
    ClassifiedRecord c{&records[i], std::move(d.event), std::move(d.dead_letter)};
    if (c.event) Route(c, routes, out.undefined);
    if (c.event && refused) {
      c.dead = DeadLetter{DeadLetterReason::kDataError, *refused};
      c.event.reset();
      c.to_store = false;
      c.kafka.clear();
    } else if (c.event && c.to_store) {
      CheckDays(c, days);
    }
    out.records.push_back(std::move(c));
  }
  return out;
}

std::vector<std::string> DevicesToEnrich(const Classified& classified,
                                         const CheckpointState& checkpoint) {
  std::vector<std::string> out;
  for (const ClassifiedRecord& c : classified.records) {
    if (c.event && !Covered(c, checkpoint)) out.push_back(c.event->device_id);
  }
  return out;
}

OutgoingRecord ToEndpointRecord(const Event& e, const std::string& topic,
                                const std::vector<std::pair<std::string, std::string>>& extra) {
  OutgoingRecord r;
  r.topic = topic;
  r.key = e.device_id;
  r.value = e.body;
  r.timestamp_ms = ToUnixMicros(e.enqueued_time) / 1000;
  for (const auto& [k, v] : e.system_properties) r.headers.emplace_back(k, v);
  std::map<std::string, std::string> app = e.application_properties;
  for (const auto& [k, v] : extra) app[k] = v;
  for (const auto& [k, v] : app) r.headers.emplace_back(k, v);
  return r;
}

LandingPlan Plan(const Classified& classified, const CheckpointState& checkpoint,
                 const std::map<std::string, routing::DeviceFields>& fields,
                 const routing::RouteSet& routes, const std::string& hub_name) {
  LandingPlan plan;
  if (!classified.records.empty()) plan.next_offset = classified.records.back().record->offset + 1;
  for (const ClassifiedRecord& c : classified.records) {
    if (Covered(c, checkpoint)) continue;
    const bool replay = Replayed(c, checkpoint);
    if (c.dead) {
      const bool gone = c.dead->reason == DeadLetterReason::kOutOfRetention ||
                        c.dead->reason == DeadLetterReason::kExpired;
      if (!replay) {
        plan.dead_letters.push_back(&c);
      } else if (gone) {
        ++plan.replay_skipped;
      } else {
        plan.replayed_dead_letters.push_back(&c);
      }
    }
    if (!c.event) continue;
    const routing::DeviceFields* device = FieldsOf(fields, c.event->device_id);
    // Kafka endpoints. One whose enrichments push the message past IoT
    // Hub's 256 KB is not sent to (IoT Hub drops it there).
    std::size_t delivered = 0;
    for (const std::size_t i : c.kafka) {
      const auto extra = routes.Enrich(i, hub_name, device);
      const std::string& name = routes.endpoints()[i].name;
      if (const std::size_t size = MessageSize(*c.event, extra); size > kMaxD2cMessageBytes) {
        plan.oversized.push_back({name, c.record, size});
        continue;
      }
      plan.sends.push_back(ToEndpointRecord(*c.event, routes.endpoints()[i].kafka_topic, extra));
      ++plan.routed[name];
      ++delivered;
    }
    if (c.to_store) {
      StoreRow row{c.record, &*c.event, routes.Enrich(routes.store_endpoint(), hub_name, device)};
      (replay ? plan.replayed : plan.fresh).push_back(std::move(row));
    } else if (!c.dead && delivered == 0) {
      ++plan.dropped;
      if (!replay) ++plan.dropped_counted;
    } else if (!c.dead && !replay) {
      ++plan.routed_elsewhere;
    }
  }
  return plan;
}

}  // namespace ferry::d2c
