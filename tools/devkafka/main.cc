// devkafka: the development Kafka (librdkafka's mock cluster) as its own
// process, so that ferryd can be killed and restarted while the topics' data
// survives. Prints the bootstrap address on its first line, then reads
// control commands, one per line, on stdin and on --control-socket.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <sys/socket.h>
#include <sys/un.h>

#include "core/kafka/mock_cluster.h"

namespace {

std::string Run(ferry::kafka::MockCluster& cluster, const std::string& line) {
  try {
    return cluster.Command(line);
  } catch (const std::exception& e) {
    return std::string("error ") + e.what();
  }
}

// Serves line commands on a Unix socket: one reply line per command.
void ServeSocket(ferry::kafka::MockCluster& cluster, const std::string& path) {
  const int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  unlink(path.c_str());
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(fd, 8) != 0) {
    std::cerr << "devkafka: cannot listen on " << path << ": " << std::strerror(errno) << "\n";
    std::exit(1);
  }
  for (;;) {
    const int client = accept(fd, nullptr, nullptr);
    if (client < 0) continue;
    std::thread([&cluster, client] {
      std::string buffer;
      char chunk[512];
      ssize_t n;
      while ((n = read(client, chunk, sizeof chunk)) > 0) {
        buffer.append(chunk, static_cast<std::size_t>(n));
        std::size_t nl;
        while ((nl = buffer.find('\n')) != std::string::npos) {
          const std::string reply = Run(cluster, buffer.substr(0, nl)) + "\n";
          buffer.erase(0, nl + 1);
          if (write(client, reply.data(), reply.size()) < 0) break;
        }
      }
      close(client);
    }).detach();
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"devkafka: a development Kafka (librdkafka mock cluster) on loopback"};
  app.footer(
      "Commands (stdin or --control-socket): topic NAME PARTITIONS | down BROKER | up BROKER |\n"
      "  rtt BROKER MS | errors APIKEY COUNT CODE | clear APIKEY | bootstrap\n"
      "Example: devkafka --topic ferry.d2c:8 --control-socket /tmp/devkafka.sock");
  int brokers = 1;
  std::vector<std::string> topics = {"ferry.d2c:8"};
  std::string socket_path;
  app.add_option("--brokers", brokers, "Number of brokers")->capture_default_str();
  app.add_option("--topic", topics, "NAME:PARTITIONS to create (repeatable)")
      ->capture_default_str();
  app.add_option("--control-socket", socket_path, "Also take commands on this Unix socket");
  CLI11_PARSE(app, argc, argv);

  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  ferry::kafka::MockCluster cluster(brokers);
  for (const std::string& t : topics) {
    const auto colon = t.rfind(':');
    try {
      cluster.CreateTopic(t.substr(0, colon),
                          colon == std::string::npos ? 1 : std::stoi(t.substr(colon + 1)));
    } catch (const std::exception& e) {
      std::cerr << "devkafka: --topic " << t << ": " << e.what() << "\n";
      return 2;
    }
  }
  std::cout << cluster.bootstrap() << std::endl;

  if (!socket_path.empty()) std::thread([&] { ServeSocket(cluster, socket_path); }).detach();
  std::thread([&cluster] {
    for (std::string line; std::getline(std::cin, line);) {
      if (!line.empty()) std::cout << Run(cluster, line) << std::endl;
    }
  }).detach();

  int sig = 0;
  sigwait(&stop, &sig);
  if (!socket_path.empty()) unlink(socket_path.c_str());
  return 0;
}
