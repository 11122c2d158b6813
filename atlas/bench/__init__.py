"""The latency benchmark (`atlas bench`, scripts/voice_latency_benchmark.py).

It measures; it never asserts.
"""
