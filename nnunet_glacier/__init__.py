"""nnunet_glacier: calving-front detection and glacier-zone segmentation in SAR images with nnU-Net v2.

Reproduces "Out-of-the-box calving front detection method using deep learning"
(Herrmann et al., The Cryosphere 2023) on the CaFFe benchmark (Gourmelon et al. 2022).
"""
__version__ = "0.1.0"
