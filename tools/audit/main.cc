// audit: checks a Ferry database against what devsim recorded Ferry
// acknowledged. Prints the figures; exits 1 on any loss, duplicate or
// inconsistency, 2 on a usage error.
#include <algorithm>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <tuple>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "core/c2d/lifecycle.h"

namespace {

struct Figures {
  long d2c_acknowledged = 0, d2c_landed = 0, d2c_lost = 0, d2c_duplicated = 0, d2c_misplaced = 0;
  long offsets_checked = 0, offsets_unaccounted = 0, offsets_doubled = 0;
  long c2d_accepted = 0, c2d_missing = 0, c2d_inconsistent = 0;
  std::map<std::string, long> c2d_by_outcome;
  long feedback_expected = 0, feedback_found = 0, feedback_missing = 0, feedback_unasked = 0,
       feedback_doubled = 0;
  long feedback_watched = 0, feedback_not_watched = 0;
  long deepest_queue = 0, queues_over_depth = 0;
};

// The most messages a device ever had pending, from each message's pending
// interval [enqueued, min(outcome time, expiry)): the count only rises when
// a message is enqueued, so checking at every enqueue is exact. Ends sort
// before starts at the same instant (half-open, as the store counts).
long DeepestQueue(const std::vector<std::pair<long long, long long>>& intervals) {
  std::vector<std::pair<long long, int>> events;
  events.reserve(intervals.size() * 2);
  for (const auto& [from, to] : intervals) {
    events.emplace_back(from, +1);
    events.emplace_back(to, -1);
  }
  std::sort(events.begin(), events.end());
  long depth = 0, deepest = 0;
  for (const auto& [at, step] : events) {
    depth += step;
    deepest = std::max(deepest, depth);
  }
  return deepest;
}

ferry::c2d::Ack AckOf(int proto) {
  switch (proto) {
    case 2:
      return ferry::c2d::Ack::kPositive;
    case 3:
      return ferry::c2d::Ack::kNegative;
    case 4:
      return ferry::c2d::Ack::kFull;
    default:
      return ferry::c2d::Ack::kNone;
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"audit: did Ferry keep everything it acknowledged, exactly once?"};
  app.footer("Example: audit --postgres-url postgresql://... --record sim.jsonl");
  std::string url, group = "ferry-d2c";
  long max_depth = 50;
  std::vector<std::string> records;
  app.add_option("--postgres-url", url, "Ferry's database")
      ->envname("FERRY_POSTGRES_URL")
      ->required();
  app.add_option("--record", records, "devsim record files (JSON lines)")->required();
  app.add_option("--group", group, "D2C consumer group")->capture_default_str();
  app.add_option("--max-queue-depth", max_depth,
                 "ferryd's --c2d-max-queue-depth: no device may ever have had more")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  std::map<std::string, std::pair<int, long>> d2c;  // message id → partition, offset acknowledged
  std::map<std::string, long> d2c_acks;
  std::map<std::pair<std::string, std::string>, int> c2d;  // (device, message id) → ack
  std::map<std::pair<std::string, std::string>, std::multiset<std::string>> settles;
  std::set<std::tuple<std::string, std::string, std::string>>
      watched;  // device, message id, status
  for (const auto& path : records) {
    std::ifstream in(path);
    if (!in) {
      std::cerr << "audit: cannot read " << path << "\n";
      return 2;
    }
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty()) continue;
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(line);
      } catch (const std::exception&) {
        continue;  // a line cut by a kill
      }
      const std::string kind = j.value("kind", "");
      if (kind == "d2c") {
        d2c[j.at("message_id")] = {j.at("partition").get<int>(), j.at("offset").get<long>()};
        ++d2c_acks[j.at("message_id")];
      } else if (kind == "c2d") {
        c2d[{j.at("device"), j.at("message_id")}] = j.at("ack").get<int>();
      } else if (kind == "settle") {
        // An unacknowledged settle (the call failed on the way) may or may
        // not have happened: it allows its outcome but does not demand it.
        const bool acked = j.value("acked", true);
        settles[{j.at("device"), j.at("message_id")}].insert((acked ? "" : "maybe-") +
                                                             j.at("action").get<std::string>());
      } else if (kind == "feedback") {
        watched.emplace(j.at("device"), j.at("message_id"), j.at("status"));
      }
    }
  }

  Figures f;
  try {
    pqxx::connection conn(url);
    pqxx::read_transaction tx(conn);
    // D2C: every acknowledged event is in the store once, where Kafka put it.
    std::map<std::string, std::vector<std::pair<int, long>>> landed;
    for (const auto& r :
         tx.exec_params("SELECT message_id, kafka_partition, kafka_offset FROM d2c_events"
                        " WHERE consumer_group = $1 AND message_id IS NOT NULL",
                        group)) {
      landed[r[0].as<std::string>()].emplace_back(r[1].as<int>(), r[2].as<long>());
    }
    f.d2c_acknowledged = static_cast<long>(d2c.size());
    for (const auto& [id, where] : d2c) {
      const auto it = landed.find(id);
      if (it == landed.end()) {
        ++f.d2c_lost;
        continue;
      }
      ++f.d2c_landed;
      if (it->second.size() > 1) ++f.d2c_duplicated;
      if (it->second.front() != where) ++f.d2c_misplaced;
    }
    // Every offset below each checkpoint once: store, dead letters, or the
    // routing counts.
    for (const auto& r : tx.exec_params(
             "SELECT c.kafka_partition, coalesce(c.next_offset, 0), c.dropped + c.routed_elsewhere,"
             " (SELECT count(*) FROM d2c_events e WHERE e.consumer_group = c.consumer_group AND "
             "e.topic = c.topic"
             "  AND e.kafka_partition = c.kafka_partition AND e.kafka_offset < "
             "coalesce(c.next_offset, 0)),"
             " (SELECT count(DISTINCT e.kafka_offset) FROM d2c_events e WHERE e.consumer_group = "
             "c.consumer_group"
             "  AND e.topic = c.topic AND e.kafka_partition = c.kafka_partition),"
             " (SELECT count(*) FROM d2c_events e WHERE e.consumer_group = c.consumer_group AND "
             "e.topic = c.topic"
             "  AND e.kafka_partition = c.kafka_partition),"
             " (SELECT count(*) FROM d2c_dead_letters d WHERE d.consumer_group = c.consumer_group "
             "AND d.topic = c.topic"
             "  AND d.kafka_partition = c.kafka_partition AND d.kafka_offset < "
             "coalesce(c.next_offset, 0))"
             " FROM d2c_checkpoints c WHERE c.consumer_group = $1",
             group)) {
      const long next = r[1].as<long>(), counted = r[2].as<long>(), stored = r[3].as<long>();
      const long distinct = r[4].as<long>(), all = r[5].as<long>(), dead = r[6].as<long>();
      f.offsets_checked += next;
      f.offsets_doubled += all - distinct;
      const long accounted = stored + dead + counted;
      if (accounted < next) f.offsets_unaccounted += next - accounted;
      if (accounted > next) f.offsets_doubled += accounted - next;
    }
    // C2D: every accepted message exists, with an outcome consistent with
    // what the devices did; feedback exactly where the ack asked.
    std::map<std::pair<std::string, std::string>, std::pair<std::string, std::string>>
        state;  // state, outcome
    for (const auto& r :
         tx.exec("SELECT device_id, message_id, state, coalesce(outcome, '') FROM c2d_messages")) {
      state[{r[0].as<std::string>(), r[1].as<std::string>()}] = {r[2].as<std::string>(),
                                                                 r[3].as<std::string>()};
    }
    std::map<std::pair<std::string, std::string>, std::map<std::string, long>> feedback;
    for (const auto& r :
         tx.exec("SELECT device_id, original_message_id, status, count(*) FROM c2d_feedback"
                 " GROUP BY 1, 2, 3")) {
      feedback[{r[0].as<std::string>(), r[1].as<std::string>()}][r[2].as<std::string>()] =
          r[3].as<long>();
    }
    f.c2d_accepted = static_cast<long>(c2d.size());
    for (const auto& [key, ack] : c2d) {
      const auto it = state.find(key);
      if (it == state.end()) {
        ++f.c2d_missing;
        continue;
      }
      const std::string& outcome = it->second.second;
      ++f.c2d_by_outcome[outcome.empty() ? "(pending)" : outcome];
      const auto& did = settles[key];
      const bool completed = did.count("complete") + did.count("maybe-complete") > 0;
      const bool rejected = did.count("reject") + did.count("maybe-reject") > 0;
      if ((outcome == "Success" && !completed) || (outcome == "Rejected" && !rejected) ||
          (did.count("complete") > 0 && outcome != "Success")) {
        ++f.c2d_inconsistent;
      }
      const auto o = ferry::c2d::OutcomeFromName(outcome).value_or(ferry::c2d::Outcome::kNone);
      const bool wanted = ferry::c2d::WantsFeedback(AckOf(ack), o);
      const auto fit = feedback.find(key);
      long found = 0;
      if (fit != feedback.end()) {
        for (const auto& [status, n] : fit->second) {
          found += n;
          if (n > 1) f.feedback_doubled += n - 1;
          if (!wanted || status != outcome) ++f.feedback_unasked;
          // The operator following Watch saw it (at least once).
          if (watched.count({key.first, key.second, status}) > 0) {
            ++f.feedback_watched;
          } else {
            ++f.feedback_not_watched;
          }
        }
      }
      if (wanted) {
        ++f.feedback_expected;
        if (found == 0) ++f.feedback_missing;
      }
      f.feedback_found += found;
    }
    // No queue ever held more pending messages than its depth.
    std::map<std::string, std::vector<std::pair<long long, long long>>> pending;
    for (const auto& r :
         tx.exec("SELECT device_id, (extract(epoch FROM enqueued_at) * 1000000)::bigint,"
                 " (extract(epoch FROM least(coalesce(outcome_at, expires_at), expires_at)) * "
                 "1000000)::bigint"
                 " FROM c2d_messages")) {
      pending[r[0].as<std::string>()].emplace_back(r[1].as<long long>(), r[2].as<long long>());
    }
    for (const auto& [device, intervals] : pending) {
      const long deepest = DeepestQueue(intervals);
      f.deepest_queue = std::max(f.deepest_queue, deepest);
      if (deepest > max_depth) {
        ++f.queues_over_depth;
        std::cerr << "audit: device " << device << " had " << deepest << " pending messages (depth "
                  << max_depth << ")\n";
      }
    }
  } catch (const std::exception& e) {
    std::cerr << "audit: " << e.what() << "\n";
    return 2;
  }

  std::cout << "D2C events acknowledged " << f.d2c_acknowledged << ", landed " << f.d2c_landed
            << ", lost " << f.d2c_lost << ", duplicated " << f.d2c_duplicated << ", misplaced "
            << f.d2c_misplaced << "\n"
            << "D2C offsets checked " << f.offsets_checked << ", unaccounted "
            << f.offsets_unaccounted << ", doubled " << f.offsets_doubled << "\n"
            << "C2D messages accepted " << f.c2d_accepted << ", missing " << f.c2d_missing
            << ", inconsistent " << f.c2d_inconsistent << "; by outcome:";
  for (const auto& [outcome, n] : f.c2d_by_outcome) std::cout << " " << outcome << " " << n;
  std::cout << "\nFeedback expected " << f.feedback_expected << ", found " << f.feedback_found
            << ", missing " << f.feedback_missing << ", unasked " << f.feedback_unasked
            << ", doubled " << f.feedback_doubled << "; delivered to the watcher "
            << f.feedback_watched << ", not delivered " << f.feedback_not_watched << "\n"
            << "C2D deepest queue " << f.deepest_queue << " of " << max_depth
            << " allowed, queues over depth " << f.queues_over_depth << "\n";
  const bool bad = f.d2c_lost + f.d2c_duplicated + f.d2c_misplaced + f.offsets_unaccounted +
                       f.offsets_doubled + f.c2d_missing + f.c2d_inconsistent + f.feedback_missing +
                       f.feedback_unasked + f.feedback_doubled + f.feedback_not_watched +
                       f.queues_over_depth >
                   0;
  std::cout << (bad ? "AUDIT FAILED" : "AUDIT PASSED") << "\n";
  return bad ? 1 : 0;
}
