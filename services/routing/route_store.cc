#include "services/routing/route_store.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "core/error.h"
#include "core/pg/sql_time.h"
#include "core/pg/transaction.h"
#include "core/routing/route_set.h"

namespace ferry::routing {
namespace {

constexpr std::string_view kRouteColumns =
    "name, source, condition, endpoint, enabled, (extract(epoch from created_at) * "
    "1000000)::bigint,"
    " (extract(epoch from updated_at) * 1000000)::bigint";

RouteRecord RouteFromRow(const pqxx::row& r) {
  return RouteRecord{r[0].as<std::string>(),
                     r[1].as<std::string>(),
                     r[2].as<std::string>(),
                     r[3].as<std::string>(),
                     r[4].as<bool>(),
                     FromUnixMicros(r[5].as<std::int64_t>()),
                     FromUnixMicros(r[6].as<std::int64_t>())};
}

void RequireEndpoint(pqxx::dbtransaction& tx, const std::string& name) {
  if (tx.exec_params("SELECT 1 FROM routing_endpoints WHERE name = $1", name).empty()) {
    throw Error(Reason::kEndpointNotFound, fmt::format("endpoint '{}' does not exist", name));
  }
}

}  // namespace

EndpointRecord RouteStore::CreateEndpoint(const EndpointRecord& e, TimePoint now) {
  return pg::WithTransaction(pool_, [&](pqxx::dbtransaction& tx) {
    tx.exec0("LOCK TABLE routing_endpoints IN SHARE ROW EXCLUSIVE MODE");
    const auto custom = tx.exec1("SELECT count(*) FROM routing_endpoints WHERE kind = 'kafka'")[0]
                            .as<std::size_t>();
    if (custom >= kMaxCustomEndpoints) {
      throw Error(
          Reason::kRoutingLimitExceeded,
          fmt::format("at most {} endpoints besides '{}'", kMaxCustomEndpoints, kBuiltInEndpoint));
    }
    const pqxx::result r = tx.exec_params(
        fmt::format(
            "INSERT INTO routing_endpoints (name, kind, kafka_topic, created_at, updated_at)"
            " VALUES ($1, 'kafka', $2, {0}, {0}) ON CONFLICT DO NOTHING RETURNING name",
            pg::TimestampFromMicros("$3")),
        e.name, e.kafka_topic, ToUnixMicros(now));
    if (r.empty()) {
      throw Error(Reason::kEndpointAlreadyExists,
                  fmt::format("endpoint '{}' already exists", e.name));
    }
    EndpointRecord out = e;
    out.kafka = true;
    out.created_at = now;
    return out;
  });
}

std::vector<EndpointRecord> RouteStore::ListEndpoints() {
  return pg::WithTransaction(pool_, [&](pqxx::dbtransaction& tx) {
    std::vector<EndpointRecord> out;
    for (const auto& r : tx.exec("SELECT name, kind = 'kafka', coalesce(kafka_topic, ''),"
                                 " (extract(epoch from created_at) * 1000000)::bigint"
                                 " FROM routing_endpoints ORDER BY name")) {
      out.push_back({r[0].as<std::string>(), r[1].as<bool>(), r[2].as<std::string>(),
                     FromUnixMicros(r[3].as<std::int64_t>())});
    }
    return out;
  });
}

void RouteStore::DeleteEndpoint(const std::string& name) {
  pg::WithTransaction(pool_, [&](pqxx::dbtransaction& tx) {
    if (name == kBuiltInEndpoint) {
      throw Error(Reason::kEndpointInUse, "the built-in endpoint 'events' cannot be deleted");
    }
    RequireEndpoint(tx, name);
    const pqxx::result used =
        tx.exec_params("SELECT name FROM routing_routes WHERE endpoint = $1 LIMIT 1", name);
    if (!used.empty()) {
      throw Error(Reason::kEndpointInUse, fmt::format("endpoint '{}' is used by route '{}'", name,
                                                      used[0][0].as<std::string>()));
    }
    tx.exec_params0("DELETE FROM routing_endpoints WHERE name = $1", name);
  });
}

RouteRecord RouteStore::CreateRoute(const RouteRecord& route, TimePoint now) {
  return pg::WithTransaction(pool_, [&](pqxx::dbtransaction& tx) {
    tx.exec0("LOCK TABLE routing_routes IN SHARE ROW EXCLUSIVE MODE");
    RequireEndpoint(tx, route.endpoint);
    if (tx.exec1("SELECT count(*) FROM routing_routes")[0].as<std::size_t>() >= kMaxRoutes) {
      throw Error(Reason::kRoutingLimitExceeded, fmt::format("at most {} routes", kMaxRoutes));
    }
    const pqxx::result r = tx.exec_params(
        fmt::format("INSERT INTO routing_routes (name, source, condition, endpoint, enabled,"
                    " created_at, updated_at) VALUES ($1, $2, $3, $4, $5, {0}, {0})"
                    " ON CONFLICT DO NOTHING RETURNING {1}",
                    pg::TimestampFromMicros("$6"), kRouteColumns),
        route.name, route.source, route.condition, route.endpoint, route.enabled,
        ToUnixMicros(now));
    if (r.empty()) {
      throw Error(Reason::kRouteAlreadyExists,
                  fmt::format("route '{}' already exists", route.name));
    }
    return RouteFromRow(r[0]);
  });
}

RouteRecord RouteStore::UpdateRoute(const RouteRecord& route, TimePoint now) {
  return pg::WithTransaction(pool_, [&](pqxx::dbtransaction& tx) {
    RequireEndpoint(tx, route.endpoint);
    const pqxx::result r = tx.exec_params(
        fmt::format("UPDATE routing_routes SET source = $2, condition = $3, endpoint = $4,"
                    " enabled = $5, updated_at = {} WHERE name = $1 RETURNING {}",
                    pg::TimestampFromMicros("$6"), kRouteColumns),
        route.name, route.source, route.condition, route.endpoint, route.enabled,
        ToUnixMicros(now));
    if (r.empty())
      throw Error(Reason::kRouteNotFound, fmt::format("route '{}' does not exist", route.name));
    return RouteFromRow(r[0]);
  });
}

RouteRecord RouteStore::GetRoute(const std::string& name) {
  return pg::WithTransaction(pool_, [&](pqxx::dbtransaction& tx) {
    const pqxx::result r = tx.exec_params(
        fmt::format("SELECT {} FROM routing_routes WHERE name = $1", kRouteColumns), name);
    if (r.empty())
      throw Error(Reason::kRouteNotFound, fmt::format("route '{}' does not exist", name));
    return RouteFromRow(r[0]);
  });
}

std::vector<RouteRecord> RouteStore::ListRoutes() {
  return pg::WithTransaction(pool_, [&](pqxx::dbtransaction& tx) {
    std::vector<RouteRecord> out;
    for (const auto& r :
         tx.exec(fmt::format("SELECT {} FROM routing_routes ORDER BY name", kRouteColumns))) {
      out.push_back(RouteFromRow(r));
    }
    return out;
  });
}

void RouteStore::DeleteRoute(const std::string& name) {
  pg::WithTransaction(pool_, [&](pqxx::dbtransaction& tx) {
    if (tx.exec_params("DELETE FROM routing_routes WHERE name = $1 RETURNING name", name).empty()) {
      throw Error(Reason::kRouteNotFound, fmt::format("route '{}' does not exist", name));
    }
  });
}

EnrichmentRecord RouteStore::SetEnrichment(const EnrichmentRecord& e, TimePoint now) {
  return pg::WithTransaction(pool_, [&](pqxx::dbtransaction& tx) {
    tx.exec0("LOCK TABLE routing_enrichments IN SHARE ROW EXCLUSIVE MODE");
    for (const std::string& endpoint : e.endpoints) RequireEndpoint(tx, endpoint);
    const bool exists =
        !tx.exec_params("SELECT 1 FROM routing_enrichments WHERE key = $1", e.key).empty();
    if (!exists && tx.exec1("SELECT count(*) FROM routing_enrichments")[0].as<std::size_t>() >=
                       kMaxEnrichments) {
      throw Error(Reason::kRoutingLimitExceeded,
                  fmt::format("at most {} enrichments", kMaxEnrichments));
    }
    tx.exec_params0(
        fmt::format(
            "INSERT INTO routing_enrichments (key, value, endpoints, created_at, updated_at)"
            " VALUES ($1, $2, ARRAY(SELECT jsonb_array_elements_text($3::jsonb)), {0}, {0})"
            " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value,"
            " endpoints = EXCLUDED.endpoints, updated_at = EXCLUDED.updated_at",
            pg::TimestampFromMicros("$4")),
        e.key, e.value, nlohmann::json(e.endpoints).dump(), ToUnixMicros(now));
    return e;
  });
}

std::vector<EnrichmentRecord> RouteStore::ListEnrichments() {
  return pg::WithTransaction(pool_, [&](pqxx::dbtransaction& tx) {
    std::vector<EnrichmentRecord> out;
    for (const auto& r :
         tx.exec("SELECT key, value, array_to_json(endpoints)::text FROM routing_enrichments"
                 " ORDER BY key")) {
      out.push_back(
          {r[0].as<std::string>(), r[1].as<std::string>(),
           nlohmann::json::parse(r[2].as<std::string>()).get<std::vector<std::string>>()});
    }
    return out;
  });
}

void RouteStore::DeleteEnrichment(const std::string& key) {
  pg::WithTransaction(pool_, [&](pqxx::dbtransaction& tx) {
    if (tx.exec_params("DELETE FROM routing_enrichments WHERE key = $1", key).affected_rows() ==
        0) {
      throw Error(Reason::kEnrichmentNotFound, fmt::format("enrichment '{}' does not exist", key));
    }
  });
}

RoutingSettings RouteStore::GetSettings() {
  return pg::WithTransaction(pool_, [&](pqxx::dbtransaction& tx) {
    const pqxx::row r =
        tx.exec1("SELECT fallback_enabled, version FROM routing_settings WHERE id = 1");
    return RoutingSettings{r[0].as<bool>(), r[1].as<std::int64_t>()};
  });
}

RoutingSettings RouteStore::SetFallback(bool enabled) {
  return pg::WithTransaction(pool_, [&](pqxx::dbtransaction& tx) {
    const pqxx::row r = tx.exec_params1(
        "UPDATE routing_settings SET fallback_enabled = $1, version = version + 1 WHERE id = 1"
        " RETURNING fallback_enabled, version",
        enabled);
    return RoutingSettings{r[0].as<bool>(), r[1].as<std::int64_t>()};
  });
}

}  // namespace ferry::routing
