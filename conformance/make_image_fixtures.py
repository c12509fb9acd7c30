#!/usr/bin/env python3
"""Image preprocessing fixtures: each reference implementation's own transform pipeline applied
to small synthetic test images, for `tests/preprocess.rs` to check incc's `preprocess` against.

Writes (all deterministic; re-running leaves the committed files unchanged):

    tests/fixtures/images/scene.png      400x300 RGB: gradients, hard-edged shapes, 1-pixel
                                         stripes (aliasing) and a noise patch
    tests/fixtures/images/scene.jpg      the same, JPEG quality 90 (decoders differ: see below)
    tests/fixtures/images/portrait.png   150x211 RGBA (portrait, smaller than every resize, so
                                         it is upscaled; the alpha channel must be dropped)
    tests/fixtures/images/<arch>.<image>.npy
                                         the preprocessed tensor, float32, shape (3, H/S, W/S):
                                         the full CxHxW tensor subsampled [:, ::S, ::S] with
                                         S = 3 (S = 4 for the portrait) to keep the fixtures small
    data/imagenet_classes.txt            torchvision's 1000 ImageNet class names, in index order

where <arch> is the stem of the `architectures/<arch>.incep` whose `preprocess` declaration
must reproduce the pipeline. The pipelines are the references' own code, not re-implementations:

    googlenet_torchvision  GoogLeNet_Weights.IMAGENET1K_V1.transforms(), then the model's
                           _transform_input (torchvision turns transform_input on with weights)
    inception_v3           Inception_V3_Weights.IMAGENET1K_V1.transforms(), then _transform_input
    bn_inception           pretrainedmodels.utils.TransformImage(pretrained_settings['bninception'])
    inception_v4           timm create_transform(**resolve_data_config({}, model=...))
    inception_resnet_v2    the same for inception_resnet_v2
    inception_resnet_v1    facenet-pytorch: Resize(160), CenterCrop(160) (standing in for the
                           MTCNN face crop, which is not part of the network), np.float32,
                           ToTensor, fixed_image_standardization

Images are opened as every reference loader does: `Image.open(path).convert("RGB")`.

Run with the PyTorch environment (torch, torchvision, timm, pretrainedmodels, facenet-pytorch,
Pillow, numpy):

    /opt/torchenv/bin/python conformance/make_image_fixtures.py

It prints the full shape and value range of each tensor and the fixtures' total size. The
scene.jpg fixtures are decoded by Pillow (libjpeg-turbo) while incc uses the `image` crate
(zune-jpeg): `tests/preprocess.rs` measures and bounds that difference separately.
"""
import os
import sys

import numpy as np
import torch
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "images")


def scene():
    """400x300 RGB test picture with smooth and sharp content."""
    h, w = 300, 400
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.zeros((h, w, 3))
    img[..., 0] = 255 * x / (w - 1)
    img[..., 1] = 255 * y / (h - 1)
    img[..., 2] = 128 + 100 * np.sin(x / 17.0) * np.cos(y / 23.0)
    disc = (x - 120) ** 2 + (y - 140) ** 2 < 60**2
    img[disc] = (250, 30, 40)
    img[40:110, 230:370] = (20, 200, 60)
    img[180:280, 220:300] = ((x[180:280, 220:300] % 2) * 255)[..., None]  # 1-pixel stripes
    img[20:60, 20:100] = (((x[20:60, 20:100] // 3 + y[20:60, 20:100] // 3) % 2) * 255)[..., None]
    rng = np.random.default_rng(0)
    img[200:290, 320:395] = rng.integers(0, 256, (90, 75, 3))
    return Image.fromarray(np.clip(np.rint(img), 0, 255).astype(np.uint8), "RGB")


def portrait():
    """150x211 RGBA: a smaller, upright picture with a non-trivial alpha channel."""
    h, w = 211, 150
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.zeros((h, w, 4))
    img[..., 0] = 128 + 120 * np.cos(x / 9.0)
    img[..., 1] = 255 * (y / (h - 1)) ** 2
    img[..., 2] = np.where((x // 10 + y // 10) % 2 == 0, 230, 25)
    img[..., 3] = 255 * x / (w - 1)
    return Image.fromarray(np.clip(np.rint(img), 0, 255).astype(np.uint8), "RGBA")


def torchvision_pipeline(builder, weights):
    model = builder(weights=None, aux_logits=False, transform_input=True, init_weights=False)
    tf = weights.transforms()

    def run(img):
        with torch.no_grad():
            return model._transform_input(tf(img)[None])[0]

    return run


def timm_pipeline(name):
    import timm
    from timm.data import create_transform, resolve_data_config

    cfg = resolve_data_config({}, model=timm.create_model(name, pretrained=False))
    return create_transform(**cfg)


def pretrainedmodels_pipeline(name):
    import pretrainedmodels
    import pretrainedmodels.utils

    return pretrainedmodels.utils.TransformImage(pretrainedmodels.pretrained_settings[name]["imagenet"])


def facenet_pipeline():
    import torchvision.transforms as T
    from facenet_pytorch import fixed_image_standardization

    return T.Compose([T.Resize(160), T.CenterCrop(160), np.float32, T.ToTensor(), fixed_image_standardization])


def pipelines():
    import torchvision.models as M

    return {
        "googlenet_torchvision": torchvision_pipeline(M.googlenet, M.GoogLeNet_Weights.IMAGENET1K_V1),
        "inception_v3": torchvision_pipeline(M.inception_v3, M.Inception_V3_Weights.IMAGENET1K_V1),
        "bn_inception": pretrainedmodels_pipeline("bninception"),
        "inception_v4": timm_pipeline("inception_v4"),
        "inception_resnet_v2": timm_pipeline("inception_resnet_v2"),
        "inception_resnet_v1": facenet_pipeline(),
    }


def save_npy(path, array):
    array = np.ascontiguousarray(array, dtype="<f4")
    np.save(path, array)


def main():
    os.makedirs(OUT, exist_ok=True)
    scene().save(os.path.join(OUT, "scene.png"), optimize=False)
    scene().save(os.path.join(OUT, "scene.jpg"), quality=90, subsampling=2)
    portrait().save(os.path.join(OUT, "portrait.png"), optimize=False)

    import torchvision.models as M

    classes = M.GoogLeNet_Weights.IMAGENET1K_V1.meta["categories"]
    assert len(classes) == 1000 and all("\n" not in c for c in classes)
    with open(os.path.join(ROOT, "data", "imagenet_classes.txt"), "w") as f:
        f.write("\n".join(classes) + "\n")

    images = {"scene": ("scene.png", 3), "portrait": ("portrait.png", 4), "scene_jpg": ("scene.jpg", 3)}
    total = 0
    for arch, pipeline in pipelines().items():
        for tag, (file, stride) in images.items():
            # The JPEG only for one bilinear and one bicubic pipeline: it checks decoding.
            if tag == "scene_jpg" and arch not in ("googlenet_torchvision", "inception_v4"):
                continue
            img = Image.open(os.path.join(OUT, file)).convert("RGB")
            x = pipeline(img)
            x = x.numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
            assert x.ndim == 3 and x.shape[0] == 3, (arch, x.shape)
            path = os.path.join(OUT, f"{arch}.{tag}.npy")
            save_npy(path, x[:, ::stride, ::stride])
            total += os.path.getsize(path)
            print(f"{arch:24} {file:13} full {tuple(x.shape)} range [{x.min():+.4f}, {x.max():+.4f}]")
    for f in ("scene.png", "scene.jpg", "portrait.png"):
        total += os.path.getsize(os.path.join(OUT, f))
    print(f"fixtures: {total / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
