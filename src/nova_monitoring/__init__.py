"""Monitoring as code for Nova Streaming: rules, alerts, dashboard, Kubernetes resources."""
