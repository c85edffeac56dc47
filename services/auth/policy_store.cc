#include "services/auth/policy_store.h"

#include <fmt/format.h>
#include <pqxx/pqxx>

#include "core/error.h"
#include "core/pg/sql_time.h"
#include "core/pg/transaction.h"

namespace ferry::access {
namespace {

constexpr std::string_view kColumns =
    "name, primary_key, secondary_key, array_to_string(permissions, ','),"
    " (extract(epoch from created_at) * 1000000)::bigint,"
    " (extract(epoch from updated_at) * 1000000)::bigint";

auth::PermissionSet ParseSet(const std::string& csv) {
  auth::PermissionSet set;
  std::size_t pos = 0;
  while (pos < csv.size()) {
    auto comma = csv.find(',', pos);
    if (comma == std::string::npos) comma = csv.size();
    if (const auto p = auth::ParsePermission(csv.substr(pos, comma - pos))) set.Add(*p);
    pos = comma + 1;
  }
  return set;
}

std::string ArrayLiteral(const auth::PermissionSet& set) {
  std::string out = "{";
  for (const auto& n : set.Names()) out += (out.size() > 1 ? "," : "") + n;
  return out + "}";
}

StoredPolicy FromRow(const pqxx::row& r) {
  StoredPolicy p;
  p.credentials.name = r[0].as<std::string>();
  p.credentials.primary_key = r[1].as<std::string>();
  p.credentials.secondary_key = r[2].as<std::string>();
  p.credentials.permissions = ParseSet(r[3].as<std::string>());
  p.created_at = FromUnixMicros(r[4].as<std::int64_t>());
  p.updated_at = FromUnixMicros(r[5].as<std::int64_t>());
  return p;
}

[[noreturn]] void NotFound(const std::string& name) {
  throw Error(Reason::kPolicyNotFound, fmt::format("policy '{}' does not exist", name));
}

void Lock(pqxx::dbtransaction& tx) {
  tx.exec0("LOCK TABLE shared_access_policies IN SHARE ROW EXCLUSIVE MODE");
}

// The limits, checked on the table as it would be after the change.
void CheckLimits(pqxx::dbtransaction& tx) {
  const pqxx::row r = tx.exec1(
      "SELECT count(*),"
      " count(*) FILTER (WHERE 'ServiceConnect' = ANY(permissions)),"
      " count(*) FILTER (WHERE permissions @> ARRAY['RegistryRead','RegistryWrite',"
      "'ServiceConnect','DeviceConnect'])"
      " FROM shared_access_policies");
  const auto total = r[0].as<std::size_t>();
  const auto service = r[1].as<std::size_t>();
  const auto owners = r[2].as<std::size_t>();
  if (total > kMaxPolicies) {
    throw Error(Reason::kPolicyLimitExceeded,
                fmt::format("a hub has at most {} shared access policies", kMaxPolicies));
  }
  if (service > kMaxServiceConnectPolicies) {
    throw Error(
        Reason::kPolicyLimitExceeded,
        fmt::format("at most {} policies may grant ServiceConnect", kMaxServiceConnectPolicies));
  }
  if (owners == 0) {
    throw Error(Reason::kPolicyLimitExceeded,
                "at least one policy must keep all four permissions (RegistryRead, "
                "RegistryWrite, ServiceConnect, DeviceConnect)");
  }
}

}  // namespace

StoredPolicy PolicyStore::Create(const auth::PolicyCredentials& p, TimePoint now,
                                 const audit::Entry* audit) {
  const NotifyOnExit notify(observer_, "policy:" + p.name);
  const std::string sql = fmt::format(
      "INSERT INTO shared_access_policies (name, primary_key, secondary_key, permissions,"
      " created_at, updated_at) VALUES ($1, $2, $3, $4::text[], {0}, {0})"
      " ON CONFLICT (name) DO NOTHING RETURNING {1}",
      pg::TimestampFromMicros("$5"), kColumns);
  return pg::WithTransaction(pool_, [&](pqxx::dbtransaction& tx) {
    Lock(tx);
    const pqxx::result r = tx.exec_params(sql, p.name, p.primary_key, p.secondary_key,
                                          ArrayLiteral(p.permissions), ToUnixMicros(now));
    if (r.empty()) {
      throw Error(Reason::kPolicyAlreadyExists, fmt::format("policy '{}' already exists", p.name));
    }
    CheckLimits(tx);
    if (audit != nullptr) audit::Write(tx, *audit, {{"permissions", ArrayLiteral(p.permissions)}});
    return FromRow(r[0]);
  });
}

StoredPolicy PolicyStore::Get(const std::string& name) {
  const std::string sql =
      fmt::format("SELECT {} FROM shared_access_policies WHERE name = $1", kColumns);
  return pg::WithTransaction(pool_, [&](pqxx::dbtransaction& tx) {
    const pqxx::result r = tx.exec_params(sql, name);
    if (r.empty()) NotFound(name);
    return FromRow(r[0]);
  });
}

std::vector<StoredPolicy> PolicyStore::List() {
  const std::string sql =
      fmt::format("SELECT {} FROM shared_access_policies ORDER BY name", kColumns);
  return pg::WithTransaction(pool_, [&](pqxx::dbtransaction& tx) {
    std::vector<StoredPolicy> out;
    for (const auto& row : tx.exec(sql)) out.push_back(FromRow(row));
    return out;
  });
}

StoredPolicy PolicyStore::Update(const std::string& name, const auth::PermissionSet& permissions,
                                 const std::optional<std::string>& primary_key,
                                 const std::optional<std::string>& secondary_key, TimePoint now,
                                 const audit::Entry* audit) {
  const NotifyOnExit notify(observer_, "policy:" + name);
  const std::string sql = fmt::format(
      "UPDATE shared_access_policies SET permissions = $2::text[],"
      " primary_key = coalesce($3, primary_key), secondary_key = coalesce($4, secondary_key),"
      " updated_at = {} WHERE name = $1 RETURNING {}",
      pg::TimestampFromMicros("$5"), kColumns);
  return pg::WithTransaction(pool_, [&](pqxx::dbtransaction& tx) {
    Lock(tx);
    const pqxx::result r = tx.exec_params(sql, name, ArrayLiteral(permissions), primary_key,
                                          secondary_key, ToUnixMicros(now));
    if (r.empty()) NotFound(name);
    CheckLimits(tx);
    if (audit != nullptr) {
      audit::Write(tx, *audit,
                   {{"permissions", ArrayLiteral(permissions)},
                    {"primary_key_replaced", primary_key.has_value()},
                    {"secondary_key_replaced", secondary_key.has_value()}});
    }
    return FromRow(r[0]);
  });
}

void PolicyStore::Delete(const std::string& name, const audit::Entry* audit) {
  const NotifyOnExit notify(observer_, "policy:" + name);
  pg::WithTransaction(pool_, [&](pqxx::dbtransaction& tx) {
    Lock(tx);
    const pqxx::result r =
        tx.exec_params("DELETE FROM shared_access_policies WHERE name = $1 RETURNING name", name);
    if (r.empty()) NotFound(name);
    CheckLimits(tx);
    if (audit != nullptr) audit::Write(tx, *audit);
  });
}

StoredPolicy PolicyStore::SetKey(const std::string& name, KeySlot slot, const std::string& key,
                                 TimePoint now, const audit::Entry* audit) {
  const NotifyOnExit notify(observer_, "policy:" + name);
  const std::string column = slot == KeySlot::kPrimary ? "primary_key" : "secondary_key";
  const std::string sql = fmt::format(
      "UPDATE shared_access_policies SET {} = $2, updated_at = {} WHERE name = $1"
      " RETURNING {}",
      column, pg::TimestampFromMicros("$3"), kColumns);
  return pg::WithTransaction(pool_, [&](pqxx::dbtransaction& tx) {
    const pqxx::result r = tx.exec_params(sql, name, key, ToUnixMicros(now));
    if (r.empty()) NotFound(name);
    if (audit != nullptr)
      audit::Write(tx, *audit, {{"slot", slot == KeySlot::kPrimary ? "primary" : "secondary"}});
    return FromRow(r[0]);
  });
}

std::optional<StoredPolicy> PolicyStore::EnsureOwner(const std::string& name,
                                                     const std::string& key,
                                                     const std::string& secondary_key,
                                                     TimePoint now) {
  const std::string sql = fmt::format(
      "INSERT INTO shared_access_policies (name, primary_key, secondary_key, permissions,"
      " created_at, updated_at) VALUES ($1, $2, $3, $4::text[], {0}, {0}) RETURNING {1}",
      pg::TimestampFromMicros("$5"), kColumns);
  return pg::WithTransaction(pool_, [&](pqxx::dbtransaction& tx) -> std::optional<StoredPolicy> {
    Lock(tx);
    if (tx.exec1("SELECT count(*) FROM shared_access_policies")[0].as<int>() > 0) {
      return std::nullopt;
    }
    const pqxx::result r = tx.exec_params(
        sql, name, key, secondary_key, ArrayLiteral(auth::PermissionSet::All()), ToUnixMicros(now));
    return FromRow(r[0]);
  });
}

std::vector<auth::PolicyCredentials> CredentialStore::LoadPolicies() {
  return pg::WithTransaction(pool_, [&](pqxx::dbtransaction& tx) {
    std::vector<auth::PolicyCredentials> out;
    for (const auto& row :
         tx.exec(fmt::format("SELECT {} FROM shared_access_policies", kColumns))) {
      out.push_back(FromRow(row).credentials);
    }
    return out;
  });
}

std::optional<auth::DeviceCredentials> CredentialStore::LoadDevice(const std::string& device_id) {
  return pg::WithTransaction(
      pool_, [&](pqxx::dbtransaction& tx) -> std::optional<auth::DeviceCredentials> {
        const pqxx::result r = tx.exec_params(
            "SELECT device_id, generation_id, primary_key, secondary_key, status = 'enabled'"
            " FROM devices WHERE device_id = $1",
            device_id);
        if (r.empty()) return std::nullopt;
        return auth::DeviceCredentials{r[0][0].as<std::string>(), r[0][1].as<std::string>(),
                                       r[0][2].as<std::string>(), r[0][3].as<std::string>(),
                                       r[0][4].as<bool>()};
      });
}

}  // namespace ferry::access
