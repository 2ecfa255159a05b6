"""The final segmentation networks by name (train_seg.py / infer_seg.py --model): psa's
ResNet-38 LargeFOV-style model and DeepLab-v2 on ResNet-101."""
from network import deeplab_largefov, deeplab_v2

MODELS = {"largefov": deeplab_largefov.Net, "deeplabv2": deeplab_v2.Net}


def build_model(name, num_classes, width=1.0, freeze_bn=True):
    return MODELS[name](num_classes=num_classes, width=width, freeze_bn=freeze_bn)
