"""facelm core library.

The pipeline, stage by stage:

- ``sdk.layouts``    landmark layouts (JD-106, WFLW-98, iBUG-68): flip permutations,
                     five alignment points, NME normalisation.
- ``sdk.alignment``  five-point similarity alignment to the reference template.
- ``sdk.preprocess`` align + normalise an image into the model input (one function for
                     training, calibration and the runtime).
- ``sdk.model``      backbones, S/D upsampling heads, named configs, FLOPs/size.
- ``sdk.codec``      heatmap encode / DARK decode (numpy reference + C twin), flip test.
- ``sdk.metrics``    NME, CED, AUC@0.08, failure rate, CED plots.
- ``sdk.data``       synthetic faces and dataset loaders, augmentation.
- ``sdk.training``   the paper's training recipe.
- ``sdk.runtime``    run a converted artifact from its manifest.
"""

__version__ = "0.1.0"
