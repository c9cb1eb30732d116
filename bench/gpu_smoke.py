"""GPU check (issue 5.6): a few trials on each visible GPU, with and without mixed precision.

    python -m bench.gpu_smoke [--trials 3] [--epochs 5] [--dataset mnist1d] [--mpi 0]

Prints one JSON line per (device, amp): samples/s per worker and peak GPU memory; with
``--mpi N`` it also runs a short study under ``mpirun -n N`` with ``device: cuda`` and prints the
device each worker recorded in the results file.  On a machine without a GPU it says so and
measures the CPU only, so the script itself can be checked anywhere.  About 2-5 minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time


class _Ctx:
    """Minimal objective context: the budget and a no-op report (no coordinator here)."""

    def __init__(self, budget: int, device: str, trial_id: int) -> None:
        self.budget, self.device, self.trial_id, self.attempt, self.rank = budget, device, trial_id, 0, 0
        self.checkpoint_dir = self.checkpoint_from = None

    def report(self, step: int, value: float, **metrics: float) -> None:
        pass


def measure(device: str, amp: str, dataset: str, trials: int, epochs: int) -> dict:
    import torch
    from rdhpo_hpc.training import load_dataset, make_builtin_objective

    obj = make_builtin_objective(
        {"model": "cnn", "dataset": dataset, "epochs": epochs, "device": device, "amp": amp, "metric": "val_accuracy"}
    )
    n = load_dataset(dataset).n_train
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(device)
    obj({"lr": 3e-3, "batch_size": 128}, _Ctx(1, device, -1))  # warm-up (cudnn autotune, kernels)
    t0 = time.perf_counter()
    accs = [obj({"lr": 3e-3, "batch_size": 128}, _Ctx(epochs, device, i)) for i in range(trials)]
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)
    dt = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated(device) if device.startswith("cuda") else 0
    return {
        "bench": "gpu_smoke",
        "device": device,
        "amp": amp,
        "samples_per_s": trials * epochs * n / dt,
        "s_per_trial": dt / trials,
        "val_accuracy": max(accs),
        "peak_mem_mb": peak / 2**20,
        "name": torch.cuda.get_device_name(device) if device.startswith("cuda") else "cpu",
    }


def mpi_study(n: int, dataset: str) -> list:
    import h5py

    out = os.path.join(tempfile.mkdtemp(), "gpu.h5")
    cfg = out.replace(".h5", ".yaml")
    with open(cfg, "w") as fh:
        fh.write(
            f"objective: {{builtin: {{model: cnn, dataset: {dataset}, epochs: 3, amp: bf16}}}}\n"
            "device: cuda\nspace: {lr: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}}\n"
            f"budget: {{max_trials: {2 * (n - 1)}}}\nprogress_interval: 2\n"
        )
    mpirun = os.path.join(os.path.dirname(sys.executable), "mpirun")
    env = {
        **os.environ,
        "OMPI_ALLOW_RUN_AS_ROOT": "1",
        "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
        "PRTE_MCA_rmaps_default_mapping_policy": ":oversubscribe",
    }
    subprocess.run(
        [mpirun, "--with-ft", "ulfm", "-n", str(n), sys.executable, "-m", "rdhpo_hpc", "run", cfg, "--output", out],
        env=env,
        timeout=600,
        check=True,
    )
    with h5py.File(out) as f:
        w = f["workers"]
        return [
            {"rank": int(r), "device": d.decode(), "name": nm.decode(), "memory_mb": int(m) // 2**20}
            for r, d, nm, m in zip(w["rank"][:], w["device"][:], w["device_name"][:], w["memory_bytes"][:])
        ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--dataset", default="mnist1d")
    ap.add_argument("--mpi", type=int, default=0, help="also run a study under mpirun -n N on the GPUs")
    ap.add_argument("--quick", action="store_true", help="1 trial of 2 epochs per mode")
    args = ap.parse_args()
    if args.quick:
        args.trials, args.epochs = 1, 2
    import torch

    gpus = [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if not gpus:
        print("# no GPU visible: measuring the CPU only", file=sys.stderr)
    for device in gpus or ["cpu"]:
        for amp in ["none", "bf16", "fp16"] if device != "cpu" else ["none"]:
            m = measure(device, amp, args.dataset, args.trials, args.epochs)
            print(
                json.dumps({"metric": "samples_per_s", "value": m["samples_per_s"], "unit": "samples/s", **m}),
                flush=True,
            )
    if args.mpi and gpus:
        for row in mpi_study(args.mpi, args.dataset):
            print(
                json.dumps(
                    {"bench": "gpu_smoke", "metric": "worker_device", "value": row.get("device"), "unit": "", **row}
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()
