"""nnU-Net v2 integration: raw-dataset export, plans, networks, trainers, prediction."""
