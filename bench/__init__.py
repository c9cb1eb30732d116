"""Benchmarks of rdhpo_hpc: numbers measured side by side in one run, not asserted by tests.

``python -m bench [--quick]`` runs every bench module found here (scaling, dispatch,
coordinator_cost, reliability, optimizer_latency, quality, multifidelity, ...), each as a
subprocess with a timeout, and collects their JSON lines into ``bench/out/results.jsonl`` and a
Markdown table ``bench/out/results.md``.  Each module also runs alone: ``python -m bench.scaling``.
"""
