#include "ferryd/app.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <functional>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include <fmt/format.h>
#include <pqxx/connection>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include "consumers/d2c/consumer.h"
#include "consumers/d2c/maintenance.h"
#include "core/auth/connection_string.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/kafka/mock_cluster.h"
#include "core/kafka/producer.h"
#include "core/liveness.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/periodic.h"
#include "core/pg/migrator.h"
#include "core/pg/pool.h"
#include "core/routing/route_set.h"
#include "ferryd/components.h"
#include "ferryd/config.h"
#include "ferryd/crash.h"
#include "migrations/embedded.h"
#include "services/auth/policy_store.h"
#include "services/c2d/sweeper.h"
#include "services/health/readiness.h"
#include "services/registry/device_rules.h"
#include "services/registry/lifecycle_publisher.h"
#include "services/server.h"
#include "services/version.h"
#include "store/d2c/event_store.h"

namespace ferry {
namespace {

sigset_t ShutdownSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  return set;
}

int Migrate(const FerrydConfig& config) {
  const auto logger = log::Get("ferryd");
  const pg::Migrator migrator(pg::ParseMigrations(migrations::EmbeddedFiles()));
  pg::Pool pool({.url = config.postgres_url, .max_size = 1}, nullptr);
  auto conn = pool.OpenDedicated();
  const auto applied = migrator.Apply(*conn);
  logger->info("migrations done applied={} known={}", applied.size(), migrator.migrations().size());
  return 0;
}

// This process in d2c_checkpoints.owner: host, pid and a random tag.
std::string OwnerId() {
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  return fmt::format("{}-{}-{}", host, getpid(), registry::NewEtag().substr(0, 6));
}

// Creates the owner policy on first start; "" once done, else why not yet.
class OwnerBootstrap final {
 public:
  OwnerBootstrap(access::PolicyStore& store, const FerrydConfig& config, const Clock& clock)
      : store_(store), config_(config), clock_(clock) {}

  std::string operator()() {
    if (done_) return "";
    try {
      const bool generated = config_.owner_key.empty();
      const std::string key = generated ? registry::NewSymmetricKey() : config_.owner_key;
      const auto created = store_.EnsureOwner(access::kOwnerPolicyName, key,
                                              registry::NewSymmetricKey(), clock_.Now());
      const auto logger = log::Get("access");
      if (created && generated) {
        const auth::ConnectionString cs{config_.hub_host, std::string(access::kOwnerPolicyName),
                                        std::nullopt, key};
        std::fprintf(stderr,
                     "\nFerry created the owner policy '%s' with a generated key. Its connection "
                     "string is shown this once:\n\n  %s\n\n",
                     access::kOwnerPolicyName, cs.ToString().c_str());
        std::fflush(stderr);
        logger->warn(
            "owner policy created with a generated key; its connection string was "
            "printed to stderr once policy=\"{}\"",
            access::kOwnerPolicyName);
      } else if (created) {
        logger->info("owner policy created from FERRY_OWNER_KEY policy=\"{}\"",
                     access::kOwnerPolicyName);
      }
      done_ = true;
      return "";
    } catch (const std::exception& e) {
      return std::string("owner policy not created yet: ") + e.what();
    }
  }

 private:
  access::PolicyStore& store_;
  const FerrydConfig& config_;
  const Clock& clock_;
  bool done_ = false;
};

// Logs a warning now and every minute while authentication is off.
std::unique_ptr<PeriodicWorker> InsecureWarning() {
  auto w = std::make_unique<PeriodicWorker>("insecure warning", [] {
    log::Get("access")->warn(
        "authentication is OFF (--insecure-no-auth): every caller may do anything; "
        "for local experiments only");
    return std::chrono::milliseconds(std::chrono::minutes(1));
  });
  w->Start();
  return w;
}

ComponentOptions OptionsOf(const FerrydConfig& config, const std::string& brokers,
                           const std::map<std::string, std::string>& kafka_properties) {
  ComponentOptions o;
  o.hub_host = config.hub_host;
  o.hub_name = routing::HubName(config.hub_host);
  o.d2c_topic = config.d2c_topic;
  o.d2c_group = config.d2c_group;
  o.kafka_brokers = brokers;
  o.kafka_properties = kafka_properties;
  o.endpoint_ack_timeout = std::chrono::seconds(30);
  o.insecure_no_auth = config.insecure_no_auth;
  o.auth_clock_skew = std::chrono::seconds(config.auth_clock_skew_seconds);
  o.rpc_workers = static_cast<std::size_t>(config.rpc_workers);
  o.throttles = {config.throttle_d2c_sends, config.throttle_c2d_sends, config.throttle_c2d_receives,
                 config.throttle_registry, config.throttle_unauthenticated};
  o.c2d_limits =
      c2d::Limits{std::chrono::seconds(config.c2d_lock_seconds), config.c2d_max_delivery_count};
  o.c2d_max_queue_depth = config.c2d_max_queue_depth;
  o.c2d_default_ttl = std::chrono::seconds(config.c2d_default_ttl_seconds);
  o.feedback = c2d::FeedbackOptions{std::chrono::seconds(config.feedback_ttl_seconds)};
  o.feedback_max_delivery_count = config.feedback_max_delivery_count;
  o.api = config.role_set.count("api") != 0;
  if (config.role_set.count("sweeper") != 0) {
    c2d::SweeperOptions so;
    so.interval = std::chrono::milliseconds(config.sweeper_interval_ms);
    so.history_retention = std::chrono::hours(config.c2d_history_retention_hours);
    o.sweeper = so;
  }
  return o;
}

int Serve(const FerrydConfig& config) {
  const auto logger = log::Get("ferryd");
  logger->info("starting version={} commit={} roles=\"{}\" hub=\"{}\"", kVersion, kGitCommit,
               config.roles, config.hub_host);

  auto registry = std::make_shared<prometheus::Registry>();
  metrics::AddBuildInfo(*registry, kVersion, kGitCommit);
  metrics::MetricsServer metrics_server(config.metrics_listen, registry);
  metrics_server.Register(metrics::MakeProcessCollector());

  const pg::Migrator migrator(pg::ParseMigrations(migrations::EmbeddedFiles()));
  pg::Pool pool(
      {.url = config.postgres_url, .max_size = static_cast<std::size_t>(config.pg_pool_size)},
      registry.get());
  if (config.migrate_on_start) {
    auto conn = pool.OpenDedicated();
    const auto applied = migrator.Apply(*conn);
    logger->info("migrations done applied={} known={}", applied.size(),
                 migrator.migrations().size());
  }

  // Kafka: the configured brokers, or an embedded development Kafka.
  std::unique_ptr<kafka::MockCluster> embedded_kafka;
  std::string brokers = config.kafka_brokers;
  if (brokers.empty()) {
    embedded_kafka = std::make_unique<kafka::MockCluster>(1);
    embedded_kafka->CreateTopic(config.d2c_topic, config.embedded_kafka_partitions);
    brokers = embedded_kafka->bootstrap();
    logger->warn(
        "no --kafka-brokers: started an embedded development Kafka (data lives only as "
        "long as this process) bootstrap=\"{}\" topic=\"{}\" partitions={}",
        brokers, config.d2c_topic, config.embedded_kafka_partitions);
  }
  std::map<std::string, std::string> kafka_properties;
  for (const std::string& kv : config.kafka_properties) {
    kafka_properties[kv.substr(0, kv.find('='))] = kv.substr(kv.find('=') + 1);
  }

  SystemClock clock;
  std::unique_ptr<PeriodicWorker> insecure;
  if (config.insecure_no_auth) insecure = InsecureWarning();
  Components components(OptionsOf(config, brokers, kafka_properties), pool, *registry, clock);
  components.Start({.listen = config.grpc_listen,
                    .reflection = config.grpc_reflection,
                    .tls_cert_file = config.tls_cert_file,
                    .tls_key_file = config.tls_key_file,
                    .tls_client_ca_file = config.tls_client_ca_file,
                    .tls_reload_seconds = static_cast<unsigned>(config.tls_reload_seconds),
                    .allow_plaintext = config.allow_plaintext},
                   true);
  GrpcServer& server = components.server();
  d2c::EventStore& event_store = components.event_store();
  registry::LifecyclePublisher* lifecycle = components.lifecycle();
  c2d::Sweeper* sweeper = components.sweeper();

  // The d2c role: an embedded development Kafka when no brokers are given,
  // day-partition maintenance, and the consumer once the store is usable.
  std::atomic<int> exit_code{0};
  std::mutex consumer_mutex;
  bool shutting_down = false;
  // After what its fatal-error callback uses, so that it is joined first
  // when an exception unwinds Serve.
  std::unique_ptr<d2c::D2cConsumer> consumer;
  std::unique_ptr<d2c::Maintenance> maintenance;
  if (config.role_set.count("d2c") != 0) {
    d2c::ConsumerOptions o;
    o.brokers = brokers;
    o.topic = config.d2c_topic;
    o.group = config.d2c_group;
    o.owner = OwnerId();
    o.instance_id = config.d2c_instance_id;
    o.on_fatal = [&logger, &exit_code](const std::string& why) {
      logger->critical(
          "the d2c consumer cannot go on ({}); shutting down so that the replica restarts", why);
      exit_code = 1;
      kill(getpid(), SIGTERM);
    };
    if (config.d2c_start == "latest") {
      o.start_from = d2c::StartFrom::kLatest;
    } else if (config.d2c_start != "earliest") {
      o.start_from = d2c::StartFrom::kTimestamp;
      o.start_time = *ParseTime(config.d2c_start);
    }
    o.batch_max_records = static_cast<std::size_t>(config.d2c_batch_max_records);
    o.max_buffered_bytes = static_cast<std::size_t>(config.d2c_buffer_mb) << 20;
    o.linger = std::chrono::milliseconds(config.d2c_linger_ms);
    o.kafka = kafka_properties;
    maintenance = std::make_unique<d2c::Maintenance>(
        event_store, clock, config.partitions_ahead_days, config.retention_days,
        std::chrono::seconds(config.maintenance_interval_seconds), [&, o] {
          std::lock_guard lock(consumer_mutex);
          if (shutting_down) return;
          // A consumer that cannot start (a Kafka property it refuses, say)
          // ends ferryd with the reason: the d2c role must not run without
          // one, and nothing would retry it.
          try {
            consumer = std::make_unique<d2c::D2cConsumer>(o, event_store, clock, *registry);
            consumer->Start();
          } catch (const std::exception& e) {
            consumer.reset();
            o.on_fatal(std::string("it did not start: ") + e.what());
          }
        });
    maintenance->Start();
  }

  OwnerBootstrap bootstrap(components.policies(), config, clock);
  // Readiness beyond the database: the owner policy exists and, for roles
  // that use Kafka, a broker answers.
  // With the api role (SendEvent), also the D2C topic's in-sync replicas:
  // too few for acks=all and sends to those partitions are refused.
  kafka::Producer* kafka_probe = &components.producer();
  const bool sends = config.role_set.count("api") != 0;
  auto extra_check = [&bootstrap, kafka_probe, &brokers, sends, &config]() -> std::string {
    std::string why = bootstrap();
    if (!why.empty()) return why;
    if (kafka_probe != nullptr && !kafka_probe->Reachable(std::chrono::milliseconds(1000))) {
      return "Kafka unreachable at " + brokers;
    }
    if (kafka_probe != nullptr && sends)
      return kafka_probe->CheckReplicas(config.d2c_topic, std::chrono::milliseconds(1000));
    return "";
  };
  health::ReadinessMonitor readiness(
      pool, migrator, [&server](bool ready) { server.SetReady(ready); },
      std::chrono::milliseconds(config.readiness_interval_ms), *registry, extra_check);
  readiness.Start();

  // Liveness: NOT_SERVING while a loop this replica depends on is stuck
  // (core/liveness.h), so that Kubernetes restarts it.
  Liveness liveness;
  liveness.Add("rpc executor", [&components] { return components.executor().OldestWait(); });
  liveness.Add(readiness.worker().name(), [&readiness] { return readiness.worker().Busy(); });
  if (lifecycle)
    liveness.Add(lifecycle->worker().name(), [lifecycle] { return lifecycle->worker().Busy(); });
  if (sweeper)
    liveness.Add(sweeper->worker().name(), [sweeper] { return sweeper->worker().Busy(); });
  if (maintenance) {
    liveness.Add(maintenance->worker().name(),
                 [&maintenance] { return maintenance->worker().Busy(); });
    liveness.Add("d2c consumer", [&]() -> std::optional<Liveness::Duration> {
      std::lock_guard lock(consumer_mutex);
      return consumer ? consumer->Stalled() : std::nullopt;
    });
  }
  const auto stall_limit = std::chrono::seconds(config.liveness_stall_seconds);
  prometheus::Gauge& live_gauge =
      metrics::Gauge(*registry, "ferry_live",
                     "1 while no loop of this replica is stuck longer than "
                     "--liveness-stall-seconds (gRPC health service \"liveness\").");
  live_gauge.Set(1);
  PeriodicWorker liveness_check("liveness check", [&, was_live = true]() mutable {
    const std::vector<std::string> stuck = liveness.Stuck(stall_limit);
    const bool live = stuck.empty();
    if (live != was_live) {
      if (live) {
        logger->info("liveness SERVING: no loop is stuck any more");
      } else {
        logger->error("liveness NOT_SERVING: stuck longer than {} s: {}",
                      config.liveness_stall_seconds, fmt::join(stuck, ", "));
      }
      server.SetLive(live);
      live_gauge.Set(live ? 1 : 0);
      was_live = live;
    }
    return std::chrono::duration_cast<std::chrono::milliseconds>(
        std::clamp<std::chrono::milliseconds>(stall_limit / 4, std::chrono::milliseconds(250),
                                              std::chrono::seconds(5)));
  });
  liveness_check.Start();

  logger->info(
      "serving grpc={} grpc_port={} tls={} auth={} metrics=http://{}/metrics metrics_port={} "
      "kafka=\"{}\"",
      config.grpc_listen, server.port(), config.tls_cert_file.empty() ? "off" : "on",
      config.insecure_no_auth ? "OFF" : "sas", config.metrics_listen, metrics_server.port(),
      brokers);

  const sigset_t signals = ShutdownSignals();
  int signal_number = 0;
  sigwait(&signals, &signal_number);
  logger->info("shutting down signal={} grace_ms={}", strsignal(signal_number),
               config.shutdown_grace_ms);
  liveness_check.Stop();
  readiness.Stop();
  {
    std::lock_guard lock(consumer_mutex);
    shutting_down = true;
  }
  if (maintenance) maintenance->Stop();
  if (consumer) consumer->Stop();  // lands what it fetched, leaves the group
  // Workers, waiting receives and streams, the server, the executor, the
  // listener.
  components.Shutdown(std::chrono::milliseconds(config.shutdown_grace_ms));
  logger->info("stopped");
  return exit_code.load();
}

}  // namespace

int FerrydMain(int argc, char** argv) {
  InstallCrashHandler();
  const sigset_t signals = ShutdownSignals();
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  CLI::App app{"ferryd: Ferry's IoT messaging backend (D2C landing, C2D queues, feedback)"};
  app.set_version_flag("--version", std::string("ferryd ") + kVersion + " (" + kGitCommit + ")");
  app.require_subcommand(1);
  FerrydConfig config;
  AddCommonOptions(app, config);
  CLI::App* serve = app.add_subcommand("serve", "Serve gRPC and metrics with the given roles");
  AddServeOptions(*serve, config);
  CLI::App* migrate = app.add_subcommand("migrate", "Apply the database migrations and exit");
  CLI::App* config_cmd = app.add_subcommand("config", "Show the configuration");
  config_cmd->require_subcommand(1);
  CLI::App* print = config_cmd->add_subcommand(
      "print",
      "Print the configuration `serve` would run with (same flags and FERRY_* environment), "
      "secrets redacted; "
      "exit 2 if it is invalid.\nExample: FERRY_POSTGRES_URL=postgresql://ferry:pw@db/ferry ferryd "
      "config print");
  bool print_json = false;
  print->add_flag("--json", print_json, "One JSON object per option");
  AddServeOptions(*print, config);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  try {
    log::Init(config.log_level,
              config.log_format == "text" ? log::Format::kText : log::Format::kJson);
    FinishConfig(config, serve->parsed() || print->parsed());
  } catch (const std::invalid_argument& e) {
    std::cerr << "ferryd: " << e.what() << "\n";
    return 2;
  }
  if (print->parsed()) {
    std::cout << DescribeConfig({&app, print}, print_json);
    return 0;
  }

  const auto logger = log::Get("ferryd");
  try {
    if (migrate->parsed()) return Migrate(config);
    return Serve(config);
  } catch (const Error& e) {
    logger->critical("fatal error={} message=\"{}\"", ReasonName(e.reason()), e.what());
    std::cerr << "ferryd: " << e.what() << "\n";
  } catch (const std::exception& e) {
    logger->critical("fatal message=\"{}\"", e.what());
    std::cerr << "ferryd: " << e.what() << "\n";
  }
  return 1;
}

}  // namespace ferry
