"""nnU-Net v2 integration: its folders, raw-dataset export, plans, networks, trainers, training, prediction."""
