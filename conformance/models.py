"""The six PyTorch reference models of incc's bundled architectures.

Install (not part of CI's default path):
    python3 -m venv /opt/torchenv
    /opt/torchenv/bin/pip install torch torchvision timm safetensors numpy
    /opt/torchenv/bin/pip install --no-deps pretrainedmodels facenet-pytorch
    /opt/torchenv/bin/pip install six munch requests tqdm   # imports of the two above
"""

# name of the .incep file (without extension) -> (constructor, input CHW)
def build(name):
    import torch
    if name == "googlenet_torchvision":
        import torchvision
        return torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=True), (3, 224, 224)
    if name == "inception_v3":
        import torchvision
        return torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=True), (3, 299, 299)
    if name == "bn_inception":
        import pretrainedmodels
        return pretrainedmodels.__dict__["bninception"](num_classes=1000, pretrained=None), (3, 224, 224)
    if name == "inception_v4":
        import timm
        return timm.create_model("inception_v4", pretrained=False), (3, 299, 299)
    if name == "inception_resnet_v1":
        from facenet_pytorch import InceptionResnetV1
        return InceptionResnetV1(pretrained=None, classify=False), (3, 160, 160)
    if name == "inception_resnet_v2":
        import timm
        return timm.create_model("inception_resnet_v2", pretrained=False), (3, 299, 299)
    raise KeyError(name)

NAMES = ["googlenet_torchvision", "bn_inception", "inception_v3", "inception_v4",
         "inception_resnet_v1", "inception_resnet_v2"]
