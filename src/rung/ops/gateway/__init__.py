"""`rung serve`: an OpenAI-compatible gateway (API key -> tenant -> served target -> pipeline),
with guardrails, micro-batching, upstream replicas, write-ahead traces, online labels and
Prometheus metrics. Modules:

    app        FastAPI routes (OpenAI shapes, health, metrics, feedback)
    service    Gateway: auth, rate limit, routing, guardrails, answer, trace, metrics
    protocol   request parsing and response / server-sent-event shapes
    routing    Resolver (tenant, model -> ServedTarget), ConfigResolver, ModelHub
    batching   BatchingModel: concurrent generate calls -> one batched call
    upstream   ReplicaPool: OpenAI-compatible replicas, health checks, least busy, failover
    observe    ObservedModel: what the model did for the request on this thread
    keys       hashed API keys per tenant
    ratelimit  token buckets per key
    traces     TraceStore: write-ahead traces, feedback, `rung score` JSONL export
    labels     OnlineLabeler: reference-free scorers on sampled traces, off the request path
    metrics    Prometheus metrics named after OpenTelemetry GenAI
"""
