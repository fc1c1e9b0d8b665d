"""The folder ``nnUNet_extTrainer`` points to; see caffe_trainers.py."""
