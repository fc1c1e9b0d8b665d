"""Our nnU-Net v2 trainers (subclasses of nnU-Net's ``nnUNetTrainer``).

- :mod:`~nnunet_glacier.nnunet.trainers.glacier`: ``nnUNetTrainerGlacier``, the
  stock trainer with the schedule from our plans configuration;
- :mod:`~nnunet_glacier.nnunet.trainers.multitask`: ``nnUNetTrainerMTLLate``,
  ``nnUNetTrainerMTLEarly``, ``nnUNetTrainerMTLBoundary``,
  ``nnUNetTrainerMTLDistance`` (front-distance head) and their loss.

Every way they (and our plans edit and labels) differ from stock nnU-Net is
listed, with its justification, in the ``glacier`` module's docstring.

``nnUNetv2_train -tr NAME`` finds them through ``nnUNet_extTrainer`` pointing
at the folder ``nnunet_ext/`` below (``nnunet-glacier trainer-path`` prints it).
"""
