// SPDX-License-Identifier: Apache-2.0
//
// larder-sim: runs access traces through LocalStore and prints hit ratios.
//
// Each request is get(key); on a miss, put(key). One output line per
// (trace, policy, capacity), space-separated key=value pairs, so scripts can
// read it:
//
//   trace=lirs-loop policy=adaptive capacity=500 requests=505500 hits=... hit_ratio=48.76
//
// Usage:
//   larder-sim --trace FILE[,FILE...] --capacity N[,N...] [--policy lru|tinylfu|adaptive|all]
//              [--opt] [--shards N] [--seed N] [--engine store|core] [--window F]
//   larder-sim --gen zipf:S:KEYS:LEN | loop:KEYS:LEN | zipfscan:S:KEYS:LEN:SCANLEN:EVERY
//              | lrustack:A:KEYS:LEN[:HOTPCT] | shift:S:KEYS:LEN:AT
//              --capacity ... [--write-trace FILE]
//
// Traces are one unsigned 64-bit decimal key per line, plain or gzip'd (when
// built with zlib); a byte that is neither a digit nor whitespace, or a key
// above 2^64-1, is an error naming the file and line (exit status 2). --opt adds Belady's
// clairvoyant optimum for the same trace and capacity (policy=opt). --shards (default 1) runs the
// store sharded, to measure what sharding costs in hit ratio.
//
// Reproducibility: the store is keyed with SimHash, a fixed mixing of the key
// and --seed (default 0), not absl::Hash, whose seed changes per process; the
// same command prints the same numbers. Different --seed values show how much
// a result owes to the hash (frequency-sketch collisions, shadow sampling).
// --engine core drives the eviction policy directly (no LocalStore, one
// shard), for policy experiments; --window F sets its window fraction
// (tinylfu: fixed; adaptive: the start).
#include <algorithm>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <limits>
#include <memory>
#include <queue>
#include <random>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "bench/sim/trace_reader.h"
#include "larder/local_store.h"

#if LARDER_SIM_HAVE_ZLIB
#include <zlib.h>
#endif

namespace {

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  std::istringstream in(s);
  while (std::getline(in, cur, sep)) {
    if (!cur.empty()) out.push_back(cur);
  }
  return out;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::vector<std::uint64_t> read_trace(const std::string& path) {
  std::vector<std::uint64_t> keys;
  larder::sim::TraceParser parser(keys);
  auto feed = [&](const char* p, std::size_t n) {
    if (absl::Status s = parser.feed(p, n); !s.ok()) {
      std::cerr << "larder-sim: " << path << ":" << s.message() << "\n";
      std::exit(2);
    }
  };
  std::vector<char> buf(1 << 20);
  if (ends_with(path, ".gz")) {
#if LARDER_SIM_HAVE_ZLIB
    gzFile f = gzopen(path.c_str(), "rb");
    if (f == nullptr) {
      std::cerr << "larder-sim: cannot open " << path << "\n";
      std::exit(2);
    }
    int n;
    while ((n = gzread(f, buf.data(), static_cast<unsigned>(buf.size()))) > 0) {
      feed(buf.data(), static_cast<std::size_t>(n));
    }
    if (n < 0) {
      int err = 0;
      const char* msg = gzerror(f, &err);
      std::cerr << "larder-sim: " << path << ": gzip read failed: " << (msg ? msg : "?") << "\n";
      std::exit(2);
    }
    gzclose(f);
#else
    std::cerr << "larder-sim: built without zlib; gunzip " << path << " first\n";
    std::exit(2);
#endif
  } else {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      std::cerr << "larder-sim: cannot open " << path << "\n";
      std::exit(2);
    }
    while (in) {
      in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
      feed(buf.data(), static_cast<std::size_t>(in.gcount()));
    }
    if (in.bad()) {
      std::cerr << "larder-sim: " << path << ": read failed\n";
      std::exit(2);
    }
  }
  parser.finish();
  return keys;
}

// Zipf(s) over [0, n) by inverse CDF on a precomputed table.
class Zipf {
 public:
  Zipf(double s, std::uint64_t n, std::uint64_t seed) : rng_(seed), cdf_(n) {
    double sum = 0;
    for (std::uint64_t i = 0; i < n; ++i) {
      sum += 1.0 / std::pow(static_cast<double>(i + 1), s);
      cdf_[i] = sum;
    }
    for (double& c : cdf_) c /= sum;
  }
  std::uint64_t next() {
    const double u = std::uniform_real_distribution<double>(0, 1)(rng_);
    return static_cast<std::uint64_t>(std::lower_bound(cdf_.begin(), cdf_.end(), u) - cdf_.begin());
  }

 private:
  std::mt19937_64 rng_;
  std::vector<double> cdf_;
};

// lru_stack: the LRU stack model (a database buffer's data pages): each
// request re-references the page at stack depth d (1 = the most recent), d
// drawn from Zipf(a) over [1, keys], or a never-seen page while the stack
// holds fewer than d pages; with probability hot instead one of keys / 50
// hot pages (an index's upper levels) by Zipf(0.9), a frequency-friendly
// share. Reuse is then a matter of recency: LRU's hit ratio at capacity C is
// about P(d <= C), and frequency (TinyLFU's admission) only gets in its way,
// more so the larger the cache. A Fenwick tree over request times finds the
// d-th most recent page in O(log n). Pages are 0..; hot pages from 2^40.
void lru_stack(double a, std::uint64_t keys, std::uint64_t len, double hot,
               std::vector<std::uint64_t>& out) {
  Zipf depth(a, keys, 43);
  Zipf hot_pages(0.9, std::max<std::uint64_t>(keys / 50, 1), 44);
  std::mt19937_64 rng(45);
  std::uniform_real_distribution<double> u(0, 1);
  const std::size_t n = static_cast<std::size_t>(len);
  std::vector<std::uint32_t> tree(n + 1, 0);  // Fenwick: 1 at the time of each page's last use
  std::vector<std::uint64_t> page_at(n + 1, 0);
  std::uint64_t live = 0, next_page = 0;
  auto add = [&](std::size_t i, int d) {
    for (; i <= n; i += i & (~i + 1)) tree[i] = static_cast<std::uint32_t>(tree[i] + d);
  };
  auto kth = [&](std::uint64_t k) {  // smallest time with k marks at or before it
    std::size_t pos = 0;
    for (std::size_t step = std::bit_floor(n); step > 0; step >>= 1) {
      if (pos + step <= n && tree[pos + step] < k) {
        pos += step;
        k -= tree[pos];
      }
    }
    return pos + 1;
  };
  out.reserve(n);
  for (std::size_t t = 1; t <= n; ++t) {
    if (hot > 0 && u(rng) < hot) {
      out.push_back((std::uint64_t{1} << 40) + hot_pages.next());
      continue;
    }
    const std::uint64_t d = depth.next() + 1;
    std::uint64_t page;
    if (d > live) {
      page = next_page++;
      ++live;
    } else {
      const std::size_t at = kth(live - d + 1);
      page = page_at[at];
      add(at, -1);
    }
    add(t, 1);
    page_at[t] = page;
    out.push_back(page);
  }
}

// Synthetic traces:
//   zipf:S:KEYS:LEN           Zipf(S) over KEYS keys (keys scrambled)
//   loop:KEYS:LEN             0, 1, ..., KEYS-1, 0, 1, ...
//   zipfscan:S:KEYS:LEN:SCANLEN:EVERY   Zipf, with a one-pass scan of SCANLEN
//                             never-seen keys after every EVERY requests
//   lrustack:A:KEYS:LEN[:HOTPCT]  a database buffer: the LRU stack model,
//                             depth ~ Zipf(A) over KEYS, plus HOTPCT% of
//                             requests to KEYS/50 hot pages (see lru_stack)
//   shift:S:KEYS:LEN:AT       Zipf(S) over KEYS keys that shift once: from
//                             request AT on, the same ranks name new keys
std::vector<std::uint64_t> generate(const std::string& spec, std::string& name) {
  std::vector<std::string> p = split(spec, ':');
  name = "gen-" + spec;
  std::vector<std::uint64_t> out;
  auto scramble = [](std::uint64_t x) { return larder::internal::mix_hash(x + 1); };
  if (p.size() == 4 && p[0] == "zipf") {
    Zipf z(std::stod(p[1]), std::stoull(p[2]), 42);
    const std::uint64_t len = std::stoull(p[3]);
    for (std::uint64_t i = 0; i < len; ++i) out.push_back(scramble(z.next()));
  } else if (p.size() == 3 && p[0] == "loop") {
    const std::uint64_t keys = std::stoull(p[1]), len = std::stoull(p[2]);
    if (keys == 0) {
      std::cerr << "larder-sim: --gen loop needs KEYS >= 1\n";
      std::exit(2);
    }
    for (std::uint64_t i = 0; i < len; ++i) out.push_back(i % keys);
  } else if (p.size() == 6 && p[0] == "zipfscan") {
    Zipf z(std::stod(p[1]), std::stoull(p[2]), 42);
    const std::uint64_t len = std::stoull(p[3]), scan = std::stoull(p[4]),
                        every = std::stoull(p[5]);
    std::uint64_t fresh = 1ull << 62;
    for (std::uint64_t i = 0; i < len; ++i) {
      out.push_back(scramble(z.next()));
      if (every > 0 && (i + 1) % every == 0) {
        for (std::uint64_t j = 0; j < scan; ++j) out.push_back(fresh++);
      }
    }
  } else if ((p.size() == 4 || p.size() == 5) && p[0] == "lrustack") {
    const std::uint64_t keys = std::stoull(p[2]), len = std::stoull(p[3]);
    const double hot = p.size() == 5 ? std::stod(p[4]) / 100 : 0;
    if (keys == 0 || hot < 0 || hot > 1) {
      std::cerr << "larder-sim: --gen lrustack needs KEYS >= 1 and 0 <= HOTPCT <= 100\n";
      std::exit(2);
    }
    lru_stack(std::stod(p[1]), keys, len, hot, out);
    for (std::uint64_t& k : out) k = scramble(k);
  } else if (p.size() == 5 && p[0] == "shift") {
    Zipf z(std::stod(p[1]), std::stoull(p[2]), 42);
    const std::uint64_t keys = std::stoull(p[2]), len = std::stoull(p[3]), at = std::stoull(p[4]);
    for (std::uint64_t i = 0; i < len; ++i) {
      out.push_back(scramble(z.next() + (i >= at ? keys : 0)));
    }
  } else {
    std::cerr << "larder-sim: bad --gen spec '" << spec << "'\n";
    std::exit(2);
  }
  return out;
}

larder::EvictionPolicy parse_policy(const std::string& p) {
  if (p == "lru") return larder::EvictionPolicy::kLru;
  if (p == "tinylfu") return larder::EvictionPolicy::kTinyLfu;
  if (p == "adaptive") return larder::EvictionPolicy::kAdaptiveTinyLfu;
  std::cerr << "larder-sim: unknown policy '" << p << "' (lru, tinylfu, adaptive, all)\n";
  std::exit(2);
}

std::uint64_t g_seed = 0;

// SimHash: a fixed, seedable hash so runs are reproducible (see the overview).
struct SimHash {
  std::size_t operator()(std::uint64_t k) const {
    std::uint64_t x = k + 0x9e3779b97f4a7c15ull * (g_seed + 1);
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return static_cast<std::size_t>(x ^ (x >> 31));
  }
};

larder::internal::PolicyKind to_kind(larder::EvictionPolicy p) {
  switch (p) {
    case larder::EvictionPolicy::kLru:
      return larder::internal::PolicyKind::kLru;
    case larder::EvictionPolicy::kTinyLfu:
      return larder::internal::PolicyKind::kTinyLfu;
    default:
      return larder::internal::PolicyKind::kAdaptiveTinyLfu;
  }
}

// run_core: the eviction policy alone over a hash map of hooks (one shard).
std::uint64_t run_core(const std::vector<std::uint64_t>& trace, larder::EvictionPolicy policy,
                       std::size_t capacity, double window) {
  using larder::internal::PolicyHook;
  larder::internal::EvictionPolicyCore core(to_kind(policy), capacity, capacity);
  if (window >= 0) core.set_window_fraction(window);
  struct Node : PolicyHook {
    std::uint64_t key = 0;
  };
  absl::flat_hash_map<std::uint64_t, std::unique_ptr<Node>> map;
  std::vector<std::uint64_t> evicted;
  std::uint64_t hits = 0;
  for (std::uint64_t k : trace) {
    auto it = map.find(k);
    if (it != map.end()) {
      ++hits;
      core.on_access(it->second.get());
      continue;
    }
    auto node = std::make_unique<Node>();
    node->hash = larder::internal::mix_hash(SimHash{}(k));
    node->key = k;
    Node* n = node.get();
    map.emplace(k, std::move(node));
    core.on_insert(n);
    core.evict([&](PolicyHook* v) { evicted.push_back(static_cast<Node*>(v)->key); });
    for (std::uint64_t e : evicted) map.erase(e);
    evicted.clear();
  }
  return hits;
}

std::uint64_t run_store(const std::vector<std::uint64_t>& trace, larder::EvictionPolicy policy,
                        std::size_t capacity, std::size_t shards) {
  auto clock = std::make_shared<larder::ManualClock>(larder::from_unix_millis(1'000'000));
  larder::LocalStore<std::uint64_t, std::uint64_t, SimHash> store(
      {.max_entries = capacity,
       .shards = shards,
       .clock = clock,
       .policy = policy,
       .hash_seed = 0});  // unsalted: SimHash already takes --seed
  const larder::Entry<std::uint64_t> e{0, larder::TimePoint::max(), larder::TimePoint::max()};
  std::uint64_t hits = 0;
  for (std::uint64_t k : trace) {
    if (store.get(k)->has_value()) {
      ++hits;
    } else {
      (void)store.put(k, e);
    }
  }
  return hits;
}

// Belady's MIN: on a miss with a full cache, evict the key whose next use is
// furthest in the future. O(n log capacity) with a lazily cleaned max-heap.
std::uint64_t run_opt(const std::vector<std::uint64_t>& trace, std::size_t capacity) {
  const std::size_t n = trace.size();
  constexpr std::size_t kNever = std::numeric_limits<std::size_t>::max();
  std::vector<std::size_t> next(n);
  {
    absl::flat_hash_map<std::uint64_t, std::size_t> last;
    for (std::size_t i = n; i-- > 0;) {
      auto it = last.find(trace[i]);
      next[i] = it == last.end() ? kNever : it->second;
      last[trace[i]] = i;
    }
  }
  absl::flat_hash_map<std::uint64_t, std::size_t> in_cache;         // key -> its next use
  std::priority_queue<std::pair<std::size_t, std::uint64_t>> heap;  // (next use, key)
  std::uint64_t hits = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint64_t k = trace[i];
    auto it = in_cache.find(k);
    if (it != in_cache.end()) {
      ++hits;
      it->second = next[i];
      heap.emplace(next[i], k);
      continue;
    }
    if (next[i] == kNever) continue;  // never used again: do not cache (bypass)
    if (in_cache.size() >= capacity) {
      while (true) {
        auto [nu, victim] = heap.top();
        heap.pop();
        auto v = in_cache.find(victim);
        if (v != in_cache.end() && v->second == nu) {
          if (nu <= next[i]) {  // every cached key is used before k: bypass k
            heap.emplace(nu, victim);
            goto skip;
          }
          in_cache.erase(v);
          break;
        }
      }
    }
    in_cache[k] = next[i];
    heap.emplace(next[i], k);
  skip:;
  }
  return hits;
}

std::string trace_name(const std::string& path) {
  std::string base = path.substr(path.find_last_of('/') + 1);
  for (const char* suf : {".gz", ".txt", ".trace"}) {
    if (ends_with(base, suf)) base = base.substr(0, base.size() - std::strlen(suf));
  }
  return base;
}

void print(const std::string& trace, const std::string& policy, std::size_t cap, std::size_t n,
           std::uint64_t hits, double secs) {
  std::printf("trace=%s policy=%s capacity=%zu requests=%zu hits=%llu hit_ratio=%.2f secs=%.2f\n",
              trace.c_str(), policy.c_str(), cap, n, static_cast<unsigned long long>(hits),
              n == 0 ? 0.0 : 100.0 * static_cast<double>(hits) / static_cast<double>(n), secs);
  std::fflush(stdout);
}

[[noreturn]] void usage() {
  std::cerr << "usage: larder-sim (--trace FILE[,FILE...] | --gen SPEC) --capacity N[,N...]\n"
               "                  [--policy lru|tinylfu|adaptive|all[,...]] [--opt] [--shards N]\n"
               "                  [--seed N] [--engine store|core] [--window F]\n"
               "                  [--write-trace FILE]\n"
               "  SPEC: zipf:S:KEYS:LEN | loop:KEYS:LEN | zipfscan:S:KEYS:LEN:SCANLEN:EVERY\n"
               "        | lrustack:A:KEYS:LEN[:HOTPCT] | shift:S:KEYS:LEN:AT\n";
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> traces, gens, policies{"lru"};
  std::vector<std::size_t> capacities;
  bool opt = false;
  std::size_t shards = 1;
  std::string write_trace, engine = "store";
  double window = -1;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage();
      return argv[++i];
    };
    if (a == "--trace") {
      for (auto& t : split(value(), ',')) traces.push_back(t);
    } else if (a == "--gen") {
      gens.push_back(value());
    } else if (a == "--capacity") {
      for (auto& c : split(value(), ',')) capacities.push_back(std::stoull(c));
    } else if (a == "--policy") {
      policies = split(value(), ',');
      if (policies.size() == 1 && policies[0] == "all") policies = {"lru", "tinylfu", "adaptive"};
    } else if (a == "--opt") {
      opt = true;
    } else if (a == "--shards") {
      shards = std::stoull(value());
    } else if (a == "--seed") {
      g_seed = std::stoull(value());
    } else if (a == "--engine") {
      engine = value();
      if (engine != "store" && engine != "core") usage();
    } else if (a == "--window") {
      window = std::stod(value());
    } else if (a == "--write-trace") {
      write_trace = value();
    } else {
      usage();
    }
  }
  if ((traces.empty() && gens.empty()) || capacities.empty()) usage();
  std::vector<std::pair<std::string, std::vector<std::uint64_t>>> inputs;
  for (const auto& t : traces) inputs.emplace_back(trace_name(t), read_trace(t));
  for (const auto& g : gens) {
    std::string name;
    auto keys = generate(g, name);
    inputs.emplace_back(name, std::move(keys));
  }
  if (!write_trace.empty()) {
    std::ofstream out(write_trace);
    for (const auto& [name, keys] : inputs) {
      for (std::uint64_t k : keys) out << k << '\n';
    }
  }
  for (const auto& [name, keys] : inputs) {
    for (std::size_t cap : capacities) {
      for (const auto& p : policies) {
        const auto t0 = std::chrono::steady_clock::now();
        const std::uint64_t hits = engine == "core" ? run_core(keys, parse_policy(p), cap, window)
                                                    : run_store(keys, parse_policy(p), cap, shards);
        const double secs =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        print(name, p, cap, keys.size(), hits, secs);
      }
      if (opt) {
        const auto t0 = std::chrono::steady_clock::now();
        const std::uint64_t hits = run_opt(keys, cap);
        const double secs =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        print(name, "opt", cap, keys.size(), hits, secs);
      }
    }
  }
  return 0;
}
