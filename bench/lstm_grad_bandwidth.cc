// lstm_grad (the backward's LSTM gate math, csrc/kernels/cell_steps_impl.h) alone, one core,
// over the backward's layout: H = 512 units per row, the forward's gates [rows, 4H], c_{t-1}
// [rows, H], dy [rows, H] read, dgx [rows, 4H] written; dh, dc and the recurrent-side copy per
// row stay in L1. Fewest ns per unit over the repetitions, and the bytes moved per second.
// mode 0: as the backward; 1: dgx into one reused row (no dgx traffic to memory);
// 2: gates, c_{t-1} and dy from one reused row (no read traffic); 3: dgx written over the
// gates it was computed from (in place: the lines are in cache, no read for ownership; later
// repetitions read gradients as gates: other values, the same work).
// Build from the repository root (one line), then run pinned to one core:
//   g++ -O3 -std=c++17 -fno-math-errno -fno-trapping-math -mavx512f -mavx512bw -mavx512dq
//       -mavx512vl -mavx2 -mfma -Icsrc/kernels -Icsrc/include bench/lstm_grad_bandwidth.cc
//       -o lstm_grad_bandwidth
//   taskset -c 0 ./lstm_grad_bandwidth ROWS REPS MODE
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "cell_steps_impl.h"

int main(int argc, char** argv) {
  using rnnfast::index_t;
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s ROWS REPS MODE\n", argv[0]);
    return 2;
  }
  const index_t H = 512, rows = std::atol(argv[1]), reps = std::atol(argv[2]);
  const int mode = std::atoi(argv[3]);
  const index_t in_rows = mode == 2 ? 1 : rows, out_rows = mode == 1 || mode == 3 ? 1 : rows;
  std::vector<float> gates(in_rows * 4 * H), cp(in_rows * H, 0.5f), dy(in_rows * H, 0.01f);
  std::vector<float> dgx(out_rows * 4 * H);
  for (std::size_t i = 0; i < gates.size(); ++i)
    gates[i] = 0.1f + 0.8f * float((i * 2654435761u) % 1000) / 1000.f;
  std::vector<float> dh(H, 0.1f), dc(H, 0.1f), sink(4 * H);
  double best = 1e30;
  for (index_t r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    for (index_t row = 0; row < rows; ++row) {
      const index_t i = mode == 2 ? 0 : row, o = mode == 1 ? 0 : row;
      for (index_t j = 0; j < H; ++j) dh[j] += dy[i * H + j];
      rnnfast::cells::lstm_grad<float>(H, H, gates.data() + i * 4 * H, cp.data() + i * H,
                                       dh.data(), dc.data(), (mode == 3 ? gates.data() + i * 4 * H : dgx.data() + o * 4 * H), sink.data());
    }
    const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (t < best) best = t;
  }
  const double units = double(rows) * H;
  const double bytes = units * ((mode == 2 ? 0 : 24) + (mode == 1 ? 0 : 16));  // mode 3: gates read and written
  std::printf("rows %ld mode %d (%.1f MB of arrays): %.3f ns per unit, %.1f GB/s (reads + writes)\n",
              static_cast<long>(rows), mode, (in_rows * 24.0 + out_rows * 16.0) * H / 1e6,
              best / units * 1e9, bytes / best / 1e9);
  return 0;
}
