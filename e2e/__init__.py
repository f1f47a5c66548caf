"""End-to-end environment and scenarios: a real control plane, a simulated mesh, real Prometheus."""
