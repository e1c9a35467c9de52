"""streaming_metrics: the Nova streaming instrumentation library (work in progress)."""
