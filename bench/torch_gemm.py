"""PyTorch's `a @ b` (MKL/oneDNN sgemm) on the shapes of benches/gemm.rs; prints `m k n best_ms gflops`."""
import sys
import time

import torch

SHAPES = [(64, 576, 8192), (128, 1152, 2048), (256, 2304, 2048), (256, 1024, 2048), (1024, 256, 2048), (512, 4608, 2048),
          (512, 2048, 2048), (2048, 512, 2048), (2304, 256, 2048), (256, 2048, 2304), (4608, 512, 2048), (512, 2048, 4608)]

torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else torch.get_num_threads())
for m, k, n in SHAPES:
    a, b = torch.rand(m, k), torch.rand(k, n)
    best = float("inf")
    for _ in range(6):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    print(f"{m} {k} {n} {best * 1e3:.2f} {2 * m * k * n / best / 1e9:.1f}")
