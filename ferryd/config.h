#pragma once

#include <chrono>
#include <set>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace ferry {

// Every flag has an environment twin (FERRY_*); secrets also take a *_FILE
// twin whose file holds the value (trailing newline ignored).
struct FerrydConfig {
  std::string postgres_url;
  std::string log_level = "info";
  std::string log_format = "json";

  // serve
  std::string roles = "api,d2c,sweeper";
  std::string grpc_listen = "127.0.0.1:50051";
  std::string metrics_listen = "127.0.0.1:9464";
  bool grpc_reflection = true;
  bool migrate_on_start = false;
  int pg_pool_size = 8;
  int rpc_workers = 8;
  int shutdown_grace_ms = 10000;
  int readiness_interval_ms = 1000;
  int liveness_stall_seconds = 120;

  // access control
  std::string hub_host = "localhost";
  std::string owner_key;
  bool insecure_no_auth = false;
  int auth_clock_skew_seconds = 60;

  // TLS
  std::string tls_cert_file;
  std::string tls_key_file;
  std::string tls_client_ca_file;
  int tls_reload_seconds = 10;
  bool allow_plaintext = false;

  // d2c
  std::string kafka_brokers;                  // empty: an embedded development Kafka
  std::vector<std::string> kafka_properties;  // key=value, passed to librdkafka
  std::string d2c_topic = "ferry.d2c";
  std::string d2c_group = "ferry-d2c";
  std::string d2c_start = "earliest";  // earliest | latest | an RFC 3339 time
  // Kafka static membership (group.instance.id): the pod name in Kubernetes.
  std::string d2c_instance_id;
  int d2c_batch_max_records = 2000;
  // Memory budget for D2C data fetched and not yet landed (all partitions).
  int d2c_buffer_mb = 64;
  int d2c_linger_ms = 50;
  int retention_days = 1;
  int partitions_ahead_days = 3;
  int maintenance_interval_seconds = 600;
  int embedded_kafka_partitions = 8;

  // c2d
  int c2d_lock_seconds = 60;
  int c2d_max_delivery_count = 10;
  int c2d_default_ttl_seconds = 3600;
  int c2d_max_queue_depth = 50;
  int c2d_history_retention_hours = 48;
  int feedback_ttl_seconds = 3600;
  int feedback_max_delivery_count = 10;
  int sweeper_interval_ms = 1000;

  // throttles, calls a second per replica (0: unlimited)
  double throttle_d2c_sends = 20000;
  double throttle_c2d_sends = 5000;
  double throttle_c2d_receives = 20000;
  double throttle_registry = 1000;
  double throttle_unauthenticated = 100;  // calls refused by authorization

  std::set<std::string> role_set;  // parsed from roles
};

// The roles this build has. Later roles (d2c, sweeper) join as they land.
inline const std::set<std::string>& KnownRoles() {
  static const std::set<std::string> roles = {"api", "d2c", "sweeper"};
  return roles;
}

// Adds the shared options to `app` and serve's to `serve`.
void AddCommonOptions(CLI::App& app, FerrydConfig& config);
void AddServeOptions(CLI::App& serve, FerrydConfig& config);

// After parsing: reads *_FILE secrets, checks ranges and roles. Throws
// std::invalid_argument with a message naming the flag and its env twin.
void FinishConfig(FerrydConfig& config, bool serving);

// `ferryd config print`: every option of `apps` (the root's common options,
// then serve's) with the value in effect and where it came from (flag,
// environment, default), secrets redacted: the owner key, the PostgreSQL
// URL's password, and Kafka properties whose name says password, secret or
// key. One `name = value  # source` line each, or JSON lines with --json.
[[nodiscard]] std::string DescribeConfig(const std::vector<const CLI::App*>& apps, bool json);
// A libpq URL or key=value string with its password replaced by "***".
[[nodiscard]] std::string RedactPostgresUrl(const std::string& url);

}  // namespace ferry
