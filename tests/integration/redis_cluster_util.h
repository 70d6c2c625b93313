// SPDX-License-Identifier: Apache-2.0
//
// Helpers for the Redis Cluster and Sentinel tests: the shared topologies
// scripts/test.sh starts (LARDER_TEST_REDIS_CLUSTER, LARDER_TEST_REDIS_SENTINELS,
// LARDER_TEST_REDIS_SENTINEL_MASTER), and private ones (PrivateCluster,
// PrivateSentinel) for tests that move slots or kill masters, so they never
// disturb tests running in parallel on the shared ones. Every child process
// is killed by a destructor.
#ifndef LARDER_TESTS_INTEGRATION_REDIS_CLUSTER_UTIL_H_
#define LARDER_TESTS_INTEGRATION_REDIS_CLUSTER_UTIL_H_

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "larder/redis.h"
#include "tests/integration/redis_test_util.h"
#include "tests/testing/testing.h"

namespace larder::testing {

inline std::vector<std::string> env_list(const char* name) {
  std::vector<std::string> out;
  const std::string v = env_or(name, "");
  std::size_t start = 0;
  while (start < v.size()) {
    std::size_t comma = v.find(',', start);
    if (comma == std::string::npos) comma = v.size();
    if (comma > start) out.push_back(v.substr(start, comma - start));
    start = comma + 1;
  }
  return out;
}

// LARDER_REQUIRE_ENV_OR_SKIP(var, what): skip (fail under scripts/test.sh)
// when the environment variable `var` is unset.
#define LARDER_REQUIRE_ENV_OR_SKIP(var, what)                          \
  if (::larder::testing::env_list(var).empty()) {                      \
    if (::larder::testing::redis_required())                           \
      FAIL() << "LARDER_TEST_REQUIRE_REDIS=1 but " var " unset";       \
    GTEST_SKIP() << "no " what ": set " var " (scripts/test.sh does)"; \
  }

// cluster_options / sentinel_options: for the shared topologies.
inline RedisOptions cluster_options(std::vector<std::string> nodes,
                                    std::string prefix = unique_prefix()) {
  RedisOptions o;
  o.cluster_nodes = std::move(nodes);
  o.key_prefix = std::move(prefix);
  o.connect_timeout = kTestCommandTimeout;
  o.command_timeout = kTestCommandTimeout;
  return o;
}
inline RedisOptions sentinel_options(std::vector<std::string> sentinels, std::string master,
                                     std::string prefix = unique_prefix()) {
  RedisOptions o;
  o.sentinels = std::move(sentinels);
  o.sentinel_master = std::move(master);
  o.key_prefix = std::move(prefix);
  o.connect_timeout = kTestCommandTimeout;
  o.command_timeout = kTestCommandTimeout;
  return o;
}

// sh: runs a shell command; its stdout.
inline std::string sh(const std::string& cmd, int* status = nullptr) {
  std::string out;
  FILE* f = ::popen((cmd + " 2>/dev/null").c_str(), "r");
  if (f == nullptr) return out;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  const int st = ::pclose(f);
  if (status != nullptr) *status = st;
  return out;
}
inline std::string cli(int port, const std::string& args) {
  return sh("redis-cli -h 127.0.0.1 -p " + std::to_string(port) + " " + args);
}
// cli_line: a one-line reply of cli, without its line end.
inline std::string cli_line(int port, const std::string& args) {
  std::string s = cli(port, args);
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

// Child: one redis-server (or sentinel) process, not daemonized, killed on destruction.
class Child {
 public:
  explicit Child(std::vector<std::string> args) : args_(std::move(args)) { start(); }
  ~Child() { kill(); }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  void start() {
    if (pid_ > 0) return;
    pid_ = ::fork();
    if (pid_ == 0) {
      const int devnull = ::open("/dev/null", O_WRONLY);
      ::dup2(devnull, 1);
      ::dup2(devnull, 2);
      std::vector<char*> argv;
      for (auto& a : args_) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execvp("redis-server", argv.data());
      ::_exit(127);
    }
  }
  void kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int st = 0;
    ::waitpid(pid_, &st, 0);
    pid_ = -1;
  }

 private:
  std::vector<std::string> args_;
  pid_t pid_ = -1;
};

inline bool wait_until(const std::function<bool()>& cond, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!cond()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return true;
}

// servers_answer: whether the redis-servers on ports [first, first + n)
// answer PING within 10 s each; if not, fails the test naming what.
inline bool servers_answer(int first, int n, const std::string& what) {
  for (int p = first; p < first + n; ++p) {
    if (!wait_until([p] { return redis_ping(p); }, std::chrono::seconds(10))) {
      ADD_FAILURE() << what << ": redis-server on " << p << " did not answer in 10 s";
      return false;
    }
  }
  return true;
}

// PrivateCluster: 3 masters + 3 replicas of our own (node-timeout 2000 ms).
class PrivateCluster {
 public:
  PrivateCluster() {
    char tmpl[] = "/tmp/larder-cluster-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    base_ = free_port_block(6, true);
    if (base_ < 0) {
      ADD_FAILURE() << "no free port block for a private cluster";
      return;
    }
    std::string nodes;
    for (int i = 0; i < 6; ++i) {
      const int p = base_ + i;
      const std::string d = dir_ + "/" + std::to_string(p);
      std::filesystem::create_directories(d);
      nodes_.push_back(std::make_unique<Child>(std::vector<std::string>{
          "redis-server", "--port", std::to_string(p), "--bind", "127.0.0.1", "--dir", d,
          "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
          "--cluster-node-timeout", "2000", "--save", "", "--appendonly", "no",
          "--repl-diskless-sync-delay", "0"}));
      nodes += " 127.0.0.1:" + std::to_string(p);
    }
    if (!servers_answer(base_, 6, "private cluster")) return;
    int st = 0;
    sh("redis-cli --cluster create" + nodes + " --cluster-replicas 1 --cluster-yes", &st);
    if (st != 0) {
      ADD_FAILURE() << "redis-cli --cluster create failed";
      return;
    }
    if (!wait_healthy(std::chrono::seconds(30)))
      ADD_FAILURE() << "private cluster not healthy in 30 s";
  }
  ~PrivateCluster() {
    nodes_.clear();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  // wait_healthy: cluster_state:ok everywhere alive, no fail flags, replicas
  // linked. On giving up, prints the last check that failed and what that
  // node reported.
  bool wait_healthy(std::chrono::milliseconds limit) {
    std::string why;
    const bool ok = wait_until(
        [&] {
          for (int i = 0; i < 6; ++i) {
            if (!alive_[i]) continue;
            const int p = base_ + i;
            const std::string info = cli(p, "cluster info");
            if (info.find("cluster_state:ok") == std::string::npos) {
              why = "node " + std::to_string(p) + " cluster info:\n" + info;
              return false;
            }
            const std::string n = cli(p, "cluster nodes");
            if (n.find("fail") != std::string::npos) {
              why = "node " + std::to_string(p) + " cluster nodes:\n" + n;
              return false;
            }
            if (cli(p, "role").rfind("slave", 0) == 0) {
              const std::string r = cli(p, "info replication");
              if (r.find("master_link_status:up") == std::string::npos) {
                why = "replica " + std::to_string(p) + " info replication:\n" + r;
                return false;
              }
            }
          }
          return true;
        },
        limit);
    if (!ok) std::fprintf(stderr, "private cluster not healthy: %s\n", why.c_str());
    return ok;
  }

  std::vector<std::string> seeds() const {
    return {"127.0.0.1:" + std::to_string(base_), "127.0.0.1:" + std::to_string(base_ + 1)};
  }
  int port(int i) const { return base_ + i; }
  std::string id(int i) const { return cli_line(base_ + i, "cluster myid"); }
  bool is_master(int i) const { return cli(base_ + i, "role").rfind("master", 0) == 0; }
  // replica_of: the index of a replica of master i, or -1.
  int replica_of(int i) const {
    const std::string mid = id(i);
    for (int j = 0; j < 6; ++j) {
      if (j != i && alive_[j] &&
          cli(base_ + j, "cluster nodes").find("myself,slave " + mid) != std::string::npos)
        return j;
    }
    return -1;
  }
  void kill(int i) {
    nodes_[static_cast<std::size_t>(i)]->kill();
    alive_[i] = false;
  }
  void restart(int i) {
    nodes_[static_cast<std::size_t>(i)]->start();
    alive_[i] = true;
    servers_answer(base_ + i, 1, "private cluster restart");
  }

 private:
  std::string dir_;
  int base_ = -1;
  std::vector<std::unique_ptr<Child>> nodes_;
  bool alive_[6] = {true, true, true, true, true, true};
};

// PrivateSentinel: a master, a replica and 3 sentinels of our own
// (down-after 1000 ms, failover-timeout 5000 ms), master name "mymaster".
class PrivateSentinel {
 public:
  PrivateSentinel() {
    char tmpl[] = "/tmp/larder-sentinel-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    base_ = free_port_block(5, false);
    if (base_ < 0) {
      ADD_FAILURE() << "no free port block for a private sentinel setup";
      return;
    }
    for (int i = 0; i < 2; ++i) {
      std::vector<std::string> a = {"redis-server",
                                    "--port",
                                    std::to_string(base_ + i),
                                    "--bind",
                                    "127.0.0.1",
                                    "--dir",
                                    dir_,
                                    "--save",
                                    "",
                                    "--appendonly",
                                    "no",
                                    "--repl-diskless-sync-delay",
                                    "0"};
      if (i == 1) a.insert(a.end(), {"--replicaof", "127.0.0.1", std::to_string(base_)});
      servers_.push_back(std::make_unique<Child>(a));
    }
    // The sentinels start once the replica is linked: a sentinel learns of
    // replicas from the master's INFO, which it re-reads only every 10 s.
    if (!servers_answer(base_, 2, "private sentinel setup")) return;
    if (!wait_until(
            [&] {
              return cli(base_ + 1, "info replication").find("master_link_status:up") !=
                     std::string::npos;
            },
            std::chrono::seconds(20))) {
      ADD_FAILURE() << "private sentinel setup: replica not linked in 20 s:\n"
                    << cli(base_ + 1, "info replication");
      return;
    }
    for (int i = 2; i < 5; ++i) {
      const std::string conf = dir_ + "/sentinel" + std::to_string(i) + ".conf";
      std::ofstream f(conf);
      f << "port " << base_ + i << "\nbind 127.0.0.1\ndir " << dir_ << "\n"
        << "sentinel monitor mymaster 127.0.0.1 " << base_ << " 2\n"
        << "sentinel down-after-milliseconds mymaster 1000\n"
        << "sentinel failover-timeout mymaster 5000\n";
      f.close();
      servers_.push_back(
          std::make_unique<Child>(std::vector<std::string>{"redis-server", conf, "--sentinel"}));
    }
    // Sentinels find each other through hello messages (every 2 s) on the
    // master; 30 s is generous for two loaded cores.
    const bool ok = wait_until(
        [&] {
          for (int i = 2; i < 5; ++i) {
            const std::string m = cli(base_ + i, "sentinel master mymaster");
            if (m.find("num-other-sentinels\n2") == std::string::npos ||
                m.find("num-slaves\n1") == std::string::npos) {
              return false;
            }
          }
          return true;
        },
        std::chrono::seconds(30));
    if (!ok) {
      std::string state;
      for (int i = 2; i < 5; ++i) {
        state += "sentinel " + std::to_string(base_ + i) + ":\n" +
                 cli(base_ + i, "sentinel master mymaster") + "\n";
      }
      ADD_FAILURE() << "private sentinel setup not healthy in 30 s\n" << state;
    }
  }
  ~PrivateSentinel() {
    servers_.clear();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  std::vector<std::string> sentinels() const {
    std::vector<std::string> s;
    for (int i = 2; i < 5; ++i) s.push_back("127.0.0.1:" + std::to_string(base_ + i));
    return s;
  }
  int port(int i) const { return base_ + i; }
  // master_port: the port the sentinels name now.
  int master_port() const {
    const std::string r = cli(base_ + 2, "sentinel get-master-addr-by-name mymaster");
    const std::size_t nl = r.find('\n');
    return nl == std::string::npos ? -1 : std::atoi(r.c_str() + nl + 1);
  }

 private:
  std::string dir_;
  int base_ = -1;
  std::vector<std::unique_ptr<Child>> servers_;
};

}  // namespace larder::testing

#endif  // LARDER_TESTS_INTEGRATION_REDIS_CLUSTER_UTIL_H_
