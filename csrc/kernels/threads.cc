// Serial stand-in for the thread pool: keeps the contract of threads.h on one thread.
#include "rnnfast/threads.h"

#include <stdexcept>

namespace rnnfast {

namespace {
int g_num_threads = 1;
}

int get_num_threads() { return g_num_threads; }

void set_num_threads(int n) {
  if (n < 1) throw std::invalid_argument("number of threads must be >= 1");
  g_num_threads = n;
}

void parallel_for(index_t n, index_t grain, const std::function<void(index_t, index_t)>& fn) {
  (void)grain;
  if (n > 0) fn(0, n);
}

}  // namespace rnnfast
