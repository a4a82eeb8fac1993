"""HyperNeRFGAN for nerfstudio: a 3D-aware GAN that learns a category of objects from unposed photos."""

import warnings

# nerfstudio 1.1.5 indexes tensors with lists and uses torch.cuda.amp decorators that torch >= 2.4 deprecates.
# The warnings come from inside nerfstudio on every batch of rays and users cannot act on them.
warnings.filterwarnings(
    "ignore", message="Using a non-tuple sequence for multidimensional indexing", category=UserWarning
)
warnings.filterwarnings("ignore", message=r"`torch\.cuda\.amp\.", category=FutureWarning)
warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)
