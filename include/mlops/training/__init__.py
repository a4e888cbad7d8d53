"""Stage 2, training: the trainer job spec, rank choice, the local launcher and the Kubernetes pod and MPIJob operators."""
