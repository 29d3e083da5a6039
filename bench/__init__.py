"""Benchmarks of campaignsvc against the sandbox Messaging Service (SPEC PERF).

One module per scenario, each printing one JSON report with its baseline measured in the same run::

    python -m bench throughput    [--size ci|full]   # 1. durable sends/s, commits per send
    python -m bench lateness      [--size ci|full]   # 2. send start − due time, gap accuracy
    python -m bench start         [--size ci|full]   # 3. API call → first send / all scheduled
    python -m bench stats         [--size ci|full]   # 4. GET /stats and the participants page
    python -m bench footprint     [--size ci|full]   # 5. RSS of idle campaign actors and limiters
    python -m bench slow-endpoint [--size ci|full]   # 6. one slow account must not delay the others
    python -m bench all --size ci

Reports are also written to ``bench/results/<scenario>-<size>.json``. See docs/performance.md.
"""
