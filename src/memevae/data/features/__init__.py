"""Image features: the feature backbones (the paper's ImageNet ResNet-101, :mod:`.resnet`, and the
weight-free colour-hog descriptor) and the checksummed cache of their output
(:mod:`.image_features`) that a data set with image features (CUB) reads."""
