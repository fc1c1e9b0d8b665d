"""The benchmark's metrics, evaluating predictions against labels, comparing results, figures."""
