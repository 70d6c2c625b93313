// SPDX-License-Identifier: Apache-2.0
//
// ZipfTable: ranks drawn by Zipf(s) over [0, n), from a uniform u in [0, 1)
// the caller draws with its own generator (so a test keeps its sequence).
//
//   const testing::ZipfTable zipf(0.99, 1000);
//   const std::size_t rank = zipf.at(u);   // 0 is the most frequent
#ifndef LARDER_TESTS_TESTING_ZIPF_H_
#define LARDER_TESTS_TESTING_ZIPF_H_

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

namespace larder::testing {

class ZipfTable {
 public:
  ZipfTable(double s, std::size_t n) : cdf_(n) {
    double sum = 0;
    for (std::size_t i = 0; i < n; ++i)
      cdf_[i] = sum += 1 / std::pow(static_cast<double>(i + 1), s);
    for (double& c : cdf_) c /= sum;
  }
  std::size_t at(double u) const {
    return static_cast<std::size_t>(std::lower_bound(cdf_.begin(), cdf_.end(), u) - cdf_.begin());
  }

 private:
  std::vector<double> cdf_;
};

}  // namespace larder::testing

#endif  // LARDER_TESTS_TESTING_ZIPF_H_
