"""Operations: health for load balancers, metrics for Prometheus."""
