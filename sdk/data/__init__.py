"""Data: synthetic faces, JD-landmark / WFLW / 300W loaders, augmentation, the training Dataset.

- ``facelm.data.synth``    synthetic faces with exact 106-point ground truth (``generate``,
                        ``generate_aligned``, ``write_jd_folder``).
- ``facelm.data.jd``       JD-landmark folders (``picture/``, ``landmark/``, ``bbox/``).
- ``facelm.data.wflw``     the WFLW annotation file.
- ``facelm.data.ibug``     300W / iBUG ``.pts`` files.
- ``facelm.data.augment``  the paper's augmentations (flip, PCA colour, jitter, erasing, rotation).
- ``facelm.data.dataset``  the torch Dataset: align -> augment -> normalise -> encode targets.
"""
