"""Data: synthetic faces, JD-landmark / WFLW / 300W loaders, augmentation, the training Dataset.

- ``sdk.data.synth``    synthetic faces with exact 106-point ground truth (``generate``,
                        ``generate_aligned``, ``write_jd_folder``).
- ``sdk.data.jd``       JD-landmark folders (``picture/``, ``landmark/``, ``bbox/``).
- ``sdk.data.wflw``     the WFLW annotation file.
- ``sdk.data.ibug``     300W / iBUG ``.pts`` files.
- ``sdk.data.augment``  the paper's augmentations (flip, PCA colour, jitter, erasing, rotation).
- ``sdk.data.dataset``  the torch Dataset: align -> augment -> normalise -> encode targets.
"""
