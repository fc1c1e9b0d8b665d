"""Our trainers, as seen by ``nnUNetv2_train -tr NAME``.

nnU-Net imports every module of the folder named by ``nnUNet_extTrainer`` by
its bare name; this module only re-exports the classes defined in
:mod:`nnunet_glacier.nnunet.trainers`, so both routes give the same classes.
"""
from nnunet_glacier.nnunet.trainers.glacier import nnUNetTrainerGlacier  # noqa: F401
from nnunet_glacier.nnunet.trainers.multitask import (  # noqa: F401
    nnUNetTrainerMTL,
    nnUNetTrainerMTLBoundary,
    nnUNetTrainerMTLDistance,
    nnUNetTrainerMTLEarly,
    nnUNetTrainerMTLLate,
)
