#include "services/ferryd/app.h"

#include <signal.h>

#include <cstdio>
#include <iostream>
#include <memory>

#include <pqxx/connection>
#include <prometheus/registry.h>

#include "core/clock.h"
#include "core/error.h"
#include "core/executor.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/pg/migrator.h"
#include "core/pg/pool.h"
#include "migrations/embedded.h"
#include "services/ferryd/config.h"
#include "services/health/readiness.h"
#include "services/registry/device_store.h"
#include "services/registry/registry_service.h"
#include "services/rpc/runtime.h"
#include "services/server.h"
#include "services/version.h"

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
  logger->info("migrations done applied={} known={}", applied.size(),
               migrator.migrations().size());
  return 0;
}

int Serve(const FerrydConfig& config) {
  const auto logger = log::Get("ferryd");
  logger->info("starting version={} commit={} roles=\"{}\"", kVersion, kGitCommit, config.roles);

  auto registry = std::make_shared<prometheus::Registry>();
  metrics::AddBuildInfo(*registry, kVersion, kGitCommit);
  metrics::MetricsServer metrics_server(config.metrics_listen, registry);
  metrics_server.Register(metrics::MakeProcessCollector());

  const pg::Migrator migrator(pg::ParseMigrations(migrations::EmbeddedFiles()));
  pg::Pool pool({.url = config.postgres_url, .max_size = static_cast<std::size_t>(config.pg_pool_size)},
                registry.get());
  if (config.migrate_on_start) {
    auto conn = pool.OpenDedicated();
    const auto applied = migrator.Apply(*conn);
    logger->info("migrations done applied={} known={}", applied.size(),
                 migrator.migrations().size());
  }

  SystemClock clock;
  Executor executor(static_cast<std::size_t>(config.rpc_workers));
  rpc::AllowAllAuthorizer authorizer;
  rpc::RpcRuntime runtime(executor, authorizer, *registry);
  registry::DeviceStore devices(pool);
  registry::RegistryService registry_service(runtime, devices, clock);

  std::vector<grpc::Service*> services;
  if (config.role_set.count("api") != 0) services.push_back(&registry_service);
  GrpcServer server({.listen = config.grpc_listen, .reflection = config.grpc_reflection},
                    services);

  health::ReadinessMonitor readiness(
      pool, migrator, [&server](bool ready) { server.SetReady(ready); },
      std::chrono::milliseconds(config.readiness_interval_ms), *registry);
  readiness.Start();

  logger->info("serving grpc={} grpc_port={} metrics=http://{}/metrics metrics_port={}",
               config.grpc_listen, server.port(), config.metrics_listen, metrics_server.port());

  const sigset_t signals = ShutdownSignals();
  int signal_number = 0;
  sigwait(&signals, &signal_number);
  logger->info("shutting down signal={} grace_ms={}", strsignal(signal_number),
               config.shutdown_grace_ms);
  readiness.Stop();
  server.Shutdown(std::chrono::milliseconds(config.shutdown_grace_ms));
  executor.Stop();
  logger->info("stopped");
  return 0;
}

}  // namespace

int FerrydMain(int argc, char** argv) {
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
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  try {
    log::Init(config.log_level, config.log_format == "text" ? log::Format::kText : log::Format::kJson);
    FinishConfig(config, serve->parsed());
  } catch (const std::invalid_argument& e) {
    std::cerr << "ferryd: " << e.what() << "\n";
    return 2;
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
