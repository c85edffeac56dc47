#include "ferryd/config.h"

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "core/auth/base64.h"
#include "core/time_text.h"

namespace ferry {
namespace {

std::string ReadSecretFile(const std::string& path, const std::string& what) {
  std::ifstream in(path);
  if (!in) throw std::invalid_argument("cannot read " + what + " from file '" + path + "'");
  std::stringstream buf;
  buf << in.rdbuf();
  std::string value = buf.str();
  while (!value.empty() && (value.back() == '\n' || value.back() == '\r')) value.pop_back();
  return value;
}

// --name / FERRY_NAME, and --name-file / FERRY_NAME_FILE.
void AddSecret(CLI::App& app, const std::string& flag, const std::string& env, std::string& target,
               const std::string& help) {
  app.add_option("--" + flag, target, help)->envname(env);
  app.add_option_function<std::string>(
         "--" + flag + "-file",
         [&target, flag](const std::string& path) {
           if (target.empty()) target = ReadSecretFile(path, "--" + flag);
         },
         "File holding the value of --" + flag)
      ->envname(env + "_FILE");
}

void Range(int value, int lo, int hi, const std::string& flag, const std::string& env) {
  if (value < lo || value > hi) {
    throw std::invalid_argument(flag + " (" + env + ") must be " + std::to_string(lo) + " to " +
                                std::to_string(hi) + ", got " + std::to_string(value));
  }
}

}  // namespace

void AddCommonOptions(CLI::App& app, FerrydConfig& c) {
  AddSecret(app, "postgres-url", "FERRY_POSTGRES_URL", c.postgres_url,
            "PostgreSQL connection URL (libpq syntax; sslmode etc. pass through)");
  app.add_option("--hub-host", c.hub_host,
                 "Hub host name: the resource root of SAS tokens and connection strings")
      ->envname("FERRY_HUB_HOST")
      ->capture_default_str();
  app.add_option("--log-level", c.log_level, "trace, debug, info, warn, error")
      ->envname("FERRY_LOG_LEVEL")
      ->capture_default_str();
  app.add_option("--log-format", c.log_format, "json (one object per line) or text")
      ->envname("FERRY_LOG_FORMAT")
      ->check(CLI::IsMember({"json", "text"}))
      ->capture_default_str();
}

void AddServeOptions(CLI::App& s, FerrydConfig& c) {
  s.add_option("--roles", c.roles, "Comma-separated roles to run: api, d2c, sweeper")
      ->envname("FERRY_ROLES")
      ->capture_default_str();
  s.add_option("--grpc-listen", c.grpc_listen, "gRPC listen address host:port")
      ->envname("FERRY_GRPC_LISTEN")
      ->capture_default_str();
  s.add_option("--metrics-listen", c.metrics_listen, "Prometheus /metrics listen address")
      ->envname("FERRY_METRICS_LISTEN")
      ->capture_default_str();
  s.add_option("--grpc-reflection", c.grpc_reflection, "Serve gRPC server reflection")
      ->envname("FERRY_GRPC_REFLECTION")
      ->capture_default_str();
  s.add_flag("--migrate", c.migrate_on_start, "Apply migrations before serving")
      ->envname("FERRY_MIGRATE");
  s.add_option("--pg-pool-size", c.pg_pool_size, "PostgreSQL connections in the pool")
      ->envname("FERRY_PG_POOL_SIZE")
      ->capture_default_str();
  s.add_option("--rpc-workers", c.rpc_workers, "Threads that run RPC handlers")
      ->envname("FERRY_RPC_WORKERS")
      ->capture_default_str();
  s.add_option("--shutdown-grace-ms", c.shutdown_grace_ms,
               "On SIGTERM, how long in-flight calls may take before they are cancelled")
      ->envname("FERRY_SHUTDOWN_GRACE_MS")
      ->capture_default_str();
  AddSecret(s, "owner-key", "FERRY_OWNER_KEY", c.owner_key,
            "Base64 key of the 'iothubowner' policy created on first start (generated and "
            "printed once when not given)");
  s.add_flag("--insecure-no-auth", c.insecure_no_auth,
             "Turn authentication off (local experiments only; warned about every minute)")
      ->envname("FERRY_INSECURE_NO_AUTH");
  s.add_option("--auth-clock-skew-seconds", c.auth_clock_skew_seconds,
               "How long past its expiry a SAS token is still accepted")
      ->envname("FERRY_AUTH_CLOCK_SKEW_SECONDS")
      ->capture_default_str();
  s.add_option("--tls-cert-file", c.tls_cert_file, "PEM certificate chain for gRPC TLS")
      ->envname("FERRY_TLS_CERT_FILE");
  s.add_option("--tls-key-file", c.tls_key_file, "PEM private key for gRPC TLS")
      ->envname("FERRY_TLS_KEY_FILE");
  s.add_option("--tls-client-ca-file", c.tls_client_ca_file,
               "PEM CA bundle: require client certificates signed by it (mutual TLS)")
      ->envname("FERRY_TLS_CLIENT_CA_FILE");
  s.add_option("--tls-reload-seconds", c.tls_reload_seconds,
               "How often changed TLS files are re-read")
      ->envname("FERRY_TLS_RELOAD_SECONDS")
      ->capture_default_str();
  s.add_flag("--allow-plaintext", c.allow_plaintext,
             "Serve gRPC without TLS on a non-loopback address")
      ->envname("FERRY_ALLOW_PLAINTEXT");
  s.add_option("--kafka-brokers", c.kafka_brokers,
               "Kafka bootstrap servers; empty starts an embedded development Kafka")
      ->envname("FERRY_KAFKA_BROKERS");
  s.add_option("--kafka-property", c.kafka_properties,
               "librdkafka property key=value (repeatable; env: ';'-separated), e.g. "
               "security.protocol=SASL_SSL")
      ->envname("FERRY_KAFKA_PROPERTIES")
      ->delimiter(';');
  s.add_option("--d2c-topic", c.d2c_topic, "Kafka topic of device-to-cloud events")
      ->envname("FERRY_D2C_TOPIC")
      ->capture_default_str();
  s.add_option("--d2c-group", c.d2c_group, "Consumer group (one landing pipeline)")
      ->envname("FERRY_D2C_GROUP")
      ->capture_default_str();
  s.add_option(
       "--d2c-instance-id", c.d2c_instance_id,
       "Kafka static group membership (group.instance.id), stable across restarts of this replica "
       "(the pod name): a restarted replica gets its partitions back without a rebalance")
      ->envname("FERRY_D2C_INSTANCE_ID");
  s.add_option(
       "--d2c-start", c.d2c_start,
       "Where a partition without a checkpoint starts: earliest, latest or an RFC 3339 time")
      ->envname("FERRY_D2C_START")
      ->capture_default_str();
  s.add_option("--d2c-buffer-mb", c.d2c_buffer_mb,
               "Memory budget in MiB for D2C data fetched and not yet landed, over all partitions "
               "(librdkafka's "
               "prefetch included); fetching pauses past it")
      ->envname("FERRY_D2C_BUFFER_MB")
      ->capture_default_str();
  s.add_option("--d2c-batch-max-records", c.d2c_batch_max_records, "Records per landing batch")
      ->envname("FERRY_D2C_BATCH_MAX_RECORDS")
      ->capture_default_str();
  s.add_option("--d2c-linger-ms", c.d2c_linger_ms, "How long a partial batch waits for more")
      ->envname("FERRY_D2C_LINGER_MS")
      ->capture_default_str();
  s.add_option("--retention-days", c.retention_days,
               "Event-store days kept before today (older days are dropped whole)")
      ->envname("FERRY_RETENTION_DAYS")
      ->capture_default_str();
  s.add_option("--maintenance-interval-seconds", c.maintenance_interval_seconds,
               "How often day partitions are created ahead and expired ones dropped")
      ->envname("FERRY_MAINTENANCE_INTERVAL_SECONDS")
      ->capture_default_str();
  s.add_option("--embedded-kafka-partitions", c.embedded_kafka_partitions,
               "Partitions of the D2C topic in the embedded development Kafka")
      ->envname("FERRY_EMBEDDED_KAFKA_PARTITIONS")
      ->capture_default_str();
  s.add_option("--c2d-lock-seconds", c.c2d_lock_seconds,
               "How long a received C2D message stays locked (5 to 300; IoT Hub: 60, fixed)")
      ->envname("FERRY_C2D_LOCK_SECONDS")
      ->capture_default_str();
  s.add_option("--c2d-max-delivery-count", c.c2d_max_delivery_count,
               "Abandons that dead-letter a C2D message (1 to 100)")
      ->envname("FERRY_C2D_MAX_DELIVERY_COUNT")
      ->capture_default_str();
  s.add_option("--c2d-default-ttl-seconds", c.c2d_default_ttl_seconds,
               "Expiry of C2D messages sent without one (60 to 172800)")
      ->envname("FERRY_C2D_DEFAULT_TTL_SECONDS")
      ->capture_default_str();
  s.add_option("--c2d-max-queue-depth", c.c2d_max_queue_depth,
               "Pending C2D messages per device (Enqueued + Invisible; 1 to 5000)")
      ->envname("FERRY_C2D_MAX_QUEUE_DEPTH")
      ->capture_default_str();
  s.add_option(
       "--c2d-history-retention-hours", c.c2d_history_retention_hours,
       "How long finished C2D messages are kept (their ids stay known for idempotent sends)")
      ->envname("FERRY_C2D_HISTORY_RETENTION_HOURS")
      ->capture_default_str();
  s.add_option("--feedback-ttl-seconds", c.feedback_ttl_seconds,
               "How long feedback records live (60 to 172800)")
      ->envname("FERRY_FEEDBACK_TTL_SECONDS")
      ->capture_default_str();
  s.add_option("--feedback-max-delivery-count", c.feedback_max_delivery_count,
               "Abandons that drop a feedback record (1 to 100)")
      ->envname("FERRY_FEEDBACK_MAX_DELIVERY_COUNT")
      ->capture_default_str();
  s.add_option("--sweeper-interval-ms", c.sweeper_interval_ms, "Pause between sweeper passes")
      ->envname("FERRY_SWEEPER_INTERVAL_MS")
      ->capture_default_str();
  s.add_option("--throttle-d2c-sends", c.throttle_d2c_sends,
               "SendEvent/SendEventBatch calls a second on this replica (0: unlimited)")
      ->envname("FERRY_THROTTLE_D2C_SENDS")
      ->capture_default_str();
  s.add_option("--throttle-c2d-sends", c.throttle_c2d_sends,
               "CloudToDevice.Send calls a second on this replica")
      ->envname("FERRY_THROTTLE_C2D_SENDS")
      ->capture_default_str();
  s.add_option("--throttle-c2d-receives", c.throttle_c2d_receives,
               "C2D Receive calls a second on this replica")
      ->envname("FERRY_THROTTLE_C2D_RECEIVES")
      ->capture_default_str();
  s.add_option("--throttle-registry", c.throttle_registry,
               "Registry calls a second on this replica")
      ->envname("FERRY_THROTTLE_REGISTRY")
      ->capture_default_str();
  s.add_option(
       "--throttle-unauthenticated", c.throttle_unauthenticated,
       "Calls a second on this replica that fail authorization (no or a bad token, a missing "
       "permission), whatever the method; past it they are throttled, never anyone else's calls")
      ->envname("FERRY_THROTTLE_UNAUTHENTICATED")
      ->capture_default_str();
  s.add_option("--readiness-interval-ms", c.readiness_interval_ms,
               "How often readiness (database reachable and migrated) is checked")
      ->envname("FERRY_READINESS_INTERVAL_MS")
      ->capture_default_str();
  s.add_option(
       "--liveness-stall-seconds", c.liveness_stall_seconds,
       "Liveness (gRPC health service \"liveness\") goes NOT_SERVING while a loop is stuck this "
       "long: "
       "an RPC or landing task waiting for a thread, the D2C poll loop not going round, a periodic "
       "job (readiness, sweeper, maintenance, lifecycle publisher) not finishing; at least 10 (a "
       "readiness check may "
       "take 2 s waiting on Kafka)")
      ->envname("FERRY_LIVENESS_STALL_SECONDS")
      ->capture_default_str();
}

void FinishConfig(FerrydConfig& c, bool serving) {
  if (c.postgres_url.empty()) {
    throw std::invalid_argument(
        "--postgres-url (FERRY_POSTGRES_URL or FERRY_POSTGRES_URL_FILE) is required");
  }
  for (char& ch : c.hub_host) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  if (c.hub_host.empty() || c.hub_host.find_first_of("/ ;=") != std::string::npos) {
    throw std::invalid_argument("--hub-host (FERRY_HUB_HOST) must be a host name");
  }
  if (!serving) return;
  if (!c.owner_key.empty()) {
    const auto key = auth::Base64Decode(c.owner_key);
    if (!key || key->size() < 16 || key->size() > 64) {
      throw std::invalid_argument(
          "--owner-key (FERRY_OWNER_KEY or FERRY_OWNER_KEY_FILE) must be base64 of 16 to 64 "
          "bytes, e.g. from `openssl rand -base64 32`");
    }
  }
  Range(c.auth_clock_skew_seconds, 0, 3600, "--auth-clock-skew-seconds",
        "FERRY_AUTH_CLOCK_SKEW_SECONDS");
  Range(c.tls_reload_seconds, 1, 86400, "--tls-reload-seconds", "FERRY_TLS_RELOAD_SECONDS");
  Range(c.pg_pool_size, 1, 512, "--pg-pool-size", "FERRY_PG_POOL_SIZE");
  Range(c.rpc_workers, 1, 512, "--rpc-workers", "FERRY_RPC_WORKERS");
  Range(c.shutdown_grace_ms, 0, 600000, "--shutdown-grace-ms", "FERRY_SHUTDOWN_GRACE_MS");
  Range(c.readiness_interval_ms, 50, 60000, "--readiness-interval-ms",
        "FERRY_READINESS_INTERVAL_MS");
  Range(c.liveness_stall_seconds, 10, 3600, "--liveness-stall-seconds",
        "FERRY_LIVENESS_STALL_SECONDS");
  Range(c.d2c_batch_max_records, 1, 100000, "--d2c-batch-max-records",
        "FERRY_D2C_BATCH_MAX_RECORDS");
  Range(c.d2c_buffer_mb, 8, 4096, "--d2c-buffer-mb", "FERRY_D2C_BUFFER_MB");
  Range(c.d2c_linger_ms, 0, 60000, "--d2c-linger-ms", "FERRY_D2C_LINGER_MS");
  Range(c.retention_days, 0, 3650, "--retention-days", "FERRY_RETENTION_DAYS");
  Range(c.c2d_lock_seconds, 5, 300, "--c2d-lock-seconds", "FERRY_C2D_LOCK_SECONDS");
  Range(c.c2d_max_delivery_count, 1, 100, "--c2d-max-delivery-count",
        "FERRY_C2D_MAX_DELIVERY_COUNT");
  Range(c.c2d_default_ttl_seconds, 60, 172800, "--c2d-default-ttl-seconds",
        "FERRY_C2D_DEFAULT_TTL_SECONDS");
  Range(c.c2d_max_queue_depth, 1, 5000, "--c2d-max-queue-depth", "FERRY_C2D_MAX_QUEUE_DEPTH");
  Range(c.c2d_history_retention_hours, 1, 720, "--c2d-history-retention-hours",
        "FERRY_C2D_HISTORY_RETENTION_HOURS");
  Range(c.feedback_ttl_seconds, 60, 172800, "--feedback-ttl-seconds", "FERRY_FEEDBACK_TTL_SECONDS");
  Range(c.feedback_max_delivery_count, 1, 100, "--feedback-max-delivery-count",
        "FERRY_FEEDBACK_MAX_DELIVERY_COUNT");
  Range(c.sweeper_interval_ms, 50, 600000, "--sweeper-interval-ms", "FERRY_SWEEPER_INTERVAL_MS");
  for (const auto& [value, flag] :
       {std::pair{c.throttle_d2c_sends, "--throttle-d2c-sends"},
        std::pair{c.throttle_c2d_sends, "--throttle-c2d-sends"},
        std::pair{c.throttle_c2d_receives, "--throttle-c2d-receives"},
        std::pair{c.throttle_registry, "--throttle-registry"},
        std::pair{c.throttle_unauthenticated, "--throttle-unauthenticated"}}) {
    if (value < 0 || value > 1e7)
      throw std::invalid_argument(std::string(flag) + " must be 0 to 10000000");
  }
  Range(c.maintenance_interval_seconds, 1, 86400, "--maintenance-interval-seconds",
        "FERRY_MAINTENANCE_INTERVAL_SECONDS");
  Range(c.embedded_kafka_partitions, 1, 1024, "--embedded-kafka-partitions",
        "FERRY_EMBEDDED_KAFKA_PARTITIONS");
  for (const std::string& kv : c.kafka_properties) {
    if (kv.find('=') == std::string::npos || kv.front() == '=') {
      throw std::invalid_argument(
          "--kafka-property (FERRY_KAFKA_PROPERTIES) takes key=value, got '" + kv + "'");
    }
  }
  if (c.d2c_instance_id.size() > 249 ||
      c.d2c_instance_id.find_first_not_of(
          "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") !=
          std::string::npos) {
    throw std::invalid_argument(
        "--d2c-instance-id (FERRY_D2C_INSTANCE_ID) takes at most 249 of a-z A-Z 0-9 . _ - (a pod "
        "name fits)");
  }
  if (c.d2c_start != "earliest" && c.d2c_start != "latest" && !ParseTime(c.d2c_start)) {
    throw std::invalid_argument(
        "--d2c-start (FERRY_D2C_START) must be earliest, latest or an RFC 3339 time");
  }
  c.role_set.clear();
  std::stringstream in(c.roles);
  for (std::string role; std::getline(in, role, ',');) {
    if (role.empty()) continue;
    if (KnownRoles().count(role) == 0) {
      throw std::invalid_argument("--roles (FERRY_ROLES): unknown role '" + role +
                                  "'; this build has: api, d2c");
    }
    c.role_set.insert(role);
  }
  if (c.role_set.empty()) throw std::invalid_argument("--roles (FERRY_ROLES) names no role");
}

namespace {

bool SecretKafkaProperty(const std::string& kv) {
  std::string key = kv.substr(0, kv.find('='));
  for (char& ch : key) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  for (const char* word : {"password", "secret", "key"}) {
    if (key.find(word) != std::string::npos) return true;
  }
  return false;
}

}  // namespace

std::string RedactPostgresUrl(const std::string& url) {
  std::string out = url;
  // URL form: scheme://user:password@host...
  const auto scheme = out.find("://");
  if (scheme != std::string::npos) {
    const auto at = out.find('@', scheme + 3);
    const auto colon = out.find(':', scheme + 3);
    if (at != std::string::npos && colon != std::string::npos && colon < at) {
      out.replace(colon + 1, at - colon - 1, "***");
    }
  }
  // password=... as a query parameter or a key=value word.
  for (std::size_t pos = 0; (pos = out.find("password=", pos)) != std::string::npos;) {
    const bool word_start =
        pos == 0 || out[pos - 1] == ' ' || out[pos - 1] == '?' || out[pos - 1] == '&';
    pos += 9;
    if (!word_start) continue;
    const auto end = out.find_first_of(" &", pos);
    out.replace(pos, (end == std::string::npos ? out.size() : end) - pos, "***");
  }
  return out;
}

std::string DescribeConfig(const std::vector<const CLI::App*>& apps, bool json) {
  std::string out;
  if (!json) {
    out +=
        "# ferryd configuration in effect: flags, then FERRY_* environment, then defaults; secrets "
        "redacted\n";
  }
  for (const CLI::App* app : apps) {
    for (const CLI::Option* opt : app->get_options()) {
      if (opt->get_lnames().empty()) continue;
      const std::string name = opt->get_lnames().front();
      if (name == "help" || name == "version" || name == "json") continue;
      // A *-file twin is shown through the value it filled in.
      if (name.size() > 5 && name.compare(name.size() - 5, 5, "-file") == 0 &&
          name.rfind("tls-", 0) != 0) {
        continue;
      }
      std::vector<std::string> values = opt->results();
      std::string source = "default";
      const std::string env = opt->get_envname();
      if (opt->count() > 0) {
        source = !env.empty() && std::getenv(env.c_str()) != nullptr ? env : "flag";
      } else {
        const std::string d = opt->get_default_str();
        values = d.empty() ? std::vector<std::string>{} : std::vector<std::string>{d};
      }
      // A secret filled from its *-file twin counts as set.
      for (const CLI::Option* twin : app->get_options()) {
        if (!twin->get_lnames().empty() && twin->get_lnames().front() == name + "-file" &&
            twin->count() > 0) {
          const std::string twin_env = twin->get_envname();
          source = !twin_env.empty() && std::getenv(twin_env.c_str()) != nullptr
                       ? twin_env
                       : "--" + name + "-file";
          values = {"(from file)"};
        }
      }
      if (opt->get_expected_max() == 0) values = {opt->count() > 0 ? "true" : "false"};  // a flag
      for (std::string& v : values) {
        if (name == "owner-key" && v != "(from file)") v = "***";
        if (name == "postgres-url") v = RedactPostgresUrl(v);
        if (name == "kafka-property" && SecretKafkaProperty(v))
          v = v.substr(0, v.find('=') + 1) + "***";
      }
      std::string value;
      for (const auto& v : values) value += (value.empty() ? "" : ";") + v;
      if (json) {
        out += nlohmann::json{{"name", name}, {"value", value}, {"source", source}, {"env", env}}
                   .dump() +
               "\n";
      } else {
        out += name + " = " + nlohmann::json(value).dump() + "  # " + source + "\n";
      }
    }
  }
  return out;
}

}  // namespace ferry
